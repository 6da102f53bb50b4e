"""RobotsTxtMiddleware (ours) on a real downloader: RFC 9309 error rules, size cap, Crawl-delay."""

from __future__ import annotations

from typing import Any

import pytest
from scrapy import Request, Spider, signals
from scrapy.exceptions import DownloadTimeoutError, IgnoreRequest, StopDownload
from scrapy.http import Response, TextResponse
from scrapy.utils.test import get_crawler

from crawler.middlewares.robots import (
    ROBOTS_REQUEST,
    RobotsConfig,
    RobotsTxtMiddleware,
    RobotsTxtUnreachable,
    cut_to_size,
)
from crawler.stats import ROBOTS_HOSTS, ROBOTS_HOSTS_UNREACHABLE, ROBOTS_UNREACHABLE_REASON
from tests.reactor import in_reactor
from tests.support import Clock

pytestmark = pytest.mark.timeout(30)

HOST = "http://site.test"


class Robots:
    """What the engine downloads for robots.txt: answers in turn (a Response or an exception)."""

    def __init__(self, *answers: Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[Request] = []

    async def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def robots(status: int = 200, body: bytes = b"") -> Response:
    url = f"{HOST}/robots.txt"
    return TextResponse(url, status=status, body=body, request=Request(url))


def make(*answers: Response | Exception, **settings: Any) -> tuple[RobotsTxtMiddleware, Robots]:
    values = {"ROBOTSTXT_OBEY": True, "ROBOTSTXT_UNREACHABLE_RETRY": 60, **settings}
    crawler = get_crawler(Spider, values)
    crawler.spider = Spider.from_crawler(crawler, name="t")
    crawler.engine = crawler._create_engine()
    fetch = Robots(*answers)
    crawler.engine.download_async = fetch  # type: ignore[method-assign]
    mw = RobotsTxtMiddleware(crawler, RobotsConfig.from_settings(crawler.settings), Clock())
    return mw, fetch


async def allowed(mw: RobotsTxtMiddleware, path: str, host: str = HOST) -> bool:
    try:
        await mw.process_request(Request(f"{host}{path}"))
    except IgnoreRequest:
        return False
    return True


def test_cut_to_size() -> None:
    assert cut_to_size(b"a\nbb\nccc\n", 100) == b"a\nbb\nccc\n"
    assert cut_to_size(b"a\nbb\nccc\n", 6) == b"a\nbb\n"
    assert cut_to_size(b"abcdef", 3) == b""


@in_reactor
async def test_rules_apply_and_the_robots_request_is_marked() -> None:
    mw, fetch = make(robots(body=b"User-agent: *\nDisallow: /private\n"))
    assert await allowed(mw, "/public")
    assert not await allowed(mw, "/private/x")
    (request,) = fetch.requests
    assert request.meta[ROBOTS_REQUEST] and request.meta["dont_obey_robotstxt"]


@in_reactor
async def test_4xx_allows_everything() -> None:
    mw, _ = make(robots(404, b"User-agent: *\nDisallow: /\n"))
    assert await allowed(mw, "/anything")
    assert mw.crawler.stats.get_value("robots/no_rules_4xx") == 1


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (robots(503), "HTTP 503"),
        (robots(429), "HTTP 429"),
        (DownloadTimeoutError("took longer than 1 s"), "DownloadTimeoutError: took longer"),
    ],
)
@in_reactor
async def test_unreachable_disallows_the_host_until_it_answers(
    answer: Response | Exception, reason: str
) -> None:
    mw, fetch = make(answer, robots(body=b"User-agent: *\nDisallow: /private\n"))
    with pytest.raises(RobotsTxtUnreachable, match=f"unreachable \\({reason}.*RFC 9309"):
        await mw.process_request(Request(f"{HOST}/page"))
    assert not await allowed(mw, "/page")  # no new robots.txt request within the retry time
    assert len(fetch.requests) == 1
    mw.clock.now += 60  # type: ignore[attr-defined]
    assert await allowed(mw, "/page")  # asked again: it answers now
    assert not await allowed(mw, "/private")
    stats = mw.crawler.stats
    assert (stats.get_value("robots/unreachable"), len(fetch.requests)) == (1, 2)
    assert stats.get_value("robots/unreachable_forbidden") == 2


@in_reactor
async def test_hosts_whose_robots_txt_is_unreachable_are_counted() -> None:
    """The health monitor fails a run whose every host stayed unreachable (U7)."""
    mw, _ = make(robots(503), robots(404), robots(body=b"User-agent: *\n"))
    stats = mw.crawler.stats
    assert not await allowed(mw, "/page")
    assert (stats.get_value(ROBOTS_HOSTS), stats.get_value(ROBOTS_HOSTS_UNREACHABLE)) == (1, 1)
    assert stats.get_value(ROBOTS_UNREACHABLE_REASON) == "site.test: HTTP 503"
    assert await allowed(mw, "/page", "http://other.test")  # a second host answers
    assert (stats.get_value(ROBOTS_HOSTS), stats.get_value(ROBOTS_HOSTS_UNREACHABLE)) == (2, 1)
    mw.clock.now += 60  # type: ignore[attr-defined]
    assert await allowed(mw, "/page")  # the first one answers when asked again
    assert (stats.get_value(ROBOTS_HOSTS), stats.get_value(ROBOTS_HOSTS_UNREACHABLE)) == (2, 0)


@in_reactor
async def test_ignored_robots_request_means_no_rules() -> None:
    mw, _ = make(IgnoreRequest("max redirections reached"))
    assert await allowed(mw, "/page")


@in_reactor
async def test_only_the_first_max_size_bytes_are_read() -> None:
    body = b"User-agent: *\nDisallow: /early\n" + b"# pad\n" * 100 + b"Disallow: /late\n"
    mw, _ = make(robots(body=body), ROBOTSTXT_MAX_SIZE=200)
    assert not await allowed(mw, "/early")
    assert await allowed(mw, "/late")
    assert mw.crawler.stats.get_value("robots/truncated") == 1


def test_the_download_stops_after_max_size() -> None:
    mw, _ = make(ROBOTSTXT_MAX_SIZE=100)
    spider = mw.crawler.spider
    ordinary = Request(f"{HOST}/big")
    mw.bytes_received(b"x" * 500, ordinary, spider)  # not a robots.txt request: untouched
    robots_request = Request(f"{HOST}/robots.txt", meta={ROBOTS_REQUEST: True})
    mw.bytes_received(b"x" * 60, robots_request, spider)
    with pytest.raises(StopDownload) as stopped:
        mw.bytes_received(b"x" * 60, robots_request, spider)
    assert stopped.value.fail is False  # keep the bytes that came


@in_reactor
async def test_crawl_delay_is_a_floor_on_the_host_slot() -> None:
    mw, _ = make(robots(body=b"User-agent: *\nCrawl-delay: 4\n"), DOWNLOAD_DELAY=1)
    downloader = mw.crawler.engine.downloader
    _, slot = downloader._get_slot(Request(f"{HOST}/"))
    assert await allowed(mw, "/page")
    assert (slot.delay, slot.jitter) == (4.0, 0.0)
    slot.delay = 0.5  # AutoThrottle lowering it after a fast answer
    request = Request(f"{HOST}/page", meta={"download_slot": "site.test"})
    mw.response_downloaded(Response(request.url, request=request), request, mw.crawler.spider)
    assert slot.delay == 4.0
    assert mw.crawler.stats.get_value("robots/crawl_delay") == 4.0


@in_reactor
async def test_crawl_delay_is_capped() -> None:
    mw, _ = make(robots(body=b"User-agent: *\nCrawl-delay: 3600\n"), ROBOTSTXT_MAX_CRAWL_DELAY=30)
    assert await allowed(mw, "/page")
    assert mw.crawl_delays == {"site.test": 30.0}


def connected(crawler: Any, signal: object, handler: Any) -> bool:
    from pydispatch import dispatcher

    live = dispatcher.liveReceivers(dispatcher.getAllReceivers(crawler.signals.sender, signal))
    return handler in list(live)


@in_reactor
async def test_pages_pay_no_robots_signal_until_it_matters() -> None:
    """``bytes_received`` is connected only while a robots.txt downloads (to cap its size),
    ``response_downloaded`` from the first Crawl-delay on (to floor the slot's delay)."""
    crawler = get_crawler(Spider, {"ROBOTSTXT_OBEY": True})
    crawler.spider = Spider.from_crawler(crawler, name="t")
    crawler.engine = crawler._create_engine()
    mw = RobotsTxtMiddleware.from_crawler(crawler)
    during: list[bool] = []

    async def fetch(request: Request) -> Response:
        during.append(connected(crawler, signals.bytes_received, mw.bytes_received))
        return robots(body=b"User-agent: *\nCrawl-delay: 2\n")

    crawler.engine.download_async = fetch  # type: ignore[method-assign]
    assert not connected(crawler, signals.bytes_received, mw.bytes_received)
    assert not connected(crawler, signals.response_downloaded, mw.response_downloaded)
    assert await allowed(mw, "/page")
    assert during == [True]
    assert not connected(crawler, signals.bytes_received, mw.bytes_received)
    assert connected(crawler, signals.response_downloaded, mw.response_downloaded)
