"""Signals our own components send (Scrapy's own are in ``scrapy.signals``), and which failures
of a request count as a failed fetch.

A component connects to one with ``crawler.signals.connect(handler, signal=fetch_failed)``.
"""

from __future__ import annotations

from scrapy.exceptions import IgnoreRequest

from crawler.exceptions import IncrementalSkip
from crawler.safety.targets import BlockedTarget

# A request of the spider finally failed without a response (retries done: timeout, DNS error,
# refused, reset...); an HTTP error status is not sent here (response_received saw it).
# Arguments: request, failure. Sent once per request, for any spider, by FetchFailureMiddleware
# (crawler/middlewares/failures.py) when the download failed, else by BaseSpider's errback for a
# failure raised after the download (a response a middleware refused): Scrapy itself has no
# signal for a failed download.
fetch_failed = object()

# Requests not made on purpose (a plain IgnoreRequest: robots.txt Disallow, offsite): no failure.
DELIBERATE = (IncrementalSkip, BlockedTarget)
# but Scrapy's redirect middlewares give up on a loop or a long chain with a plain one too
REDIRECT_LIMIT = "max redirections reached"


def deliberate(exc: BaseException) -> bool:
    """Did the crawl drop the request on purpose (no fetch failure)?"""
    plain = type(exc) is IgnoreRequest and str(exc) != REDIRECT_LIMIT
    return plain or isinstance(exc, DELIBERATE)


def error_name(exc: BaseException) -> str:
    """The name of a failure without response: the exception's class name."""
    return "redirect_limit" if str(exc) == REDIRECT_LIMIT else type(exc).__name__
