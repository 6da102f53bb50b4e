"""``FetchFailureMiddleware``: a download that finally failed, for any spider.

Scrapy sends no signal when a download fails: the failure goes to the request's errback, and a
plain ``scrapy.Spider`` (no errback) leaves no trace but a log line, so its timeouts and refused
connections counted nowhere and a run that fetched half its pages looked fine. This middleware
sits outermost (``DOWNLOADER_MIDDLEWARES`` 10): its ``process_exception`` runs after every other
middleware's, when Retry has given up and no middleware turned the failure into a response or a
new request. For a failure that is no deliberate drop (``crawler.signals.deliberate``: robots.txt
Disallow, a blocked target, a recrawl's skip) of a request of the spider (not a component's own,
robots.txt), it sends ``crawler.signals.fetch_failed`` once (marking the request
``FAILURE_SENT``, so the spider's errback does not send it again) and, when the request was sent
(not refused before it: its host's robots.txt unreachable), counts ``crawl/download_failures``.
What reads them: the verdict's error count (``crawler.stats.fetch_errors``), the failed-page rows
and snapshots, the errors per host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.exceptions import IgnoreRequest
from twisted.python.failure import Failure

from crawler import stats as keys
from crawler.meta import FAILURE_SENT, is_own_request
from crawler.signals import deliberate, fetch_failed

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler


class FetchFailureMiddleware:
    """Counts and signals every download that finally failed (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FetchFailureMiddleware:
        return cls(crawler)

    def process_exception(self, request: Request, exception: Exception) -> None:
        if deliberate(exception) or is_own_request(request) or request.meta.get(FAILURE_SENT):
            return
        request.meta[FAILURE_SENT] = True
        if not isinstance(exception, IgnoreRequest):  # refused before it was sent (robots.txt
            assert self.crawler.stats is not None  # unreachable): its own rule says why
            self.crawler.stats.inc_value(keys.DOWNLOAD_FAILURES)
        self.crawler.signals.send_catch_log(
            fetch_failed,
            request=request,
            failure=Failure(exception),  # type: ignore[no-untyped-call]
        )
