"""RetryAfterMiddleware on a real downloader: pauses, backoff growth and cap, recovery, holds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from scrapy import Request, Spider
from scrapy.core.downloader import Slot
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.settings import Settings
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.test import get_crawler
from twisted.internet import reactor
from twisted.internet.task import deferLater

from crawler.middlewares.retryafter import (
    RetryAfterConfig,
    RetryAfterMiddleware,
    parse_retry_after,
)
from tests.reactor import in_reactor
from tests.support import Clock

pytestmark = pytest.mark.timeout(30)

# the middleware's downloader slots start Scrapy's slot timers: built where the event loop runs
pytestmark = pytest.mark.reactor_thread

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make(**settings: Any) -> tuple[RetryAfterMiddleware, Slot, Clock]:
    values = {"AUTOTHROTTLE_ENABLED": False, "DOWNLOAD_DELAY": 0.5, **settings}
    crawler = get_crawler(Spider, values)
    crawler.spider = Spider.from_crawler(crawler, name="t")
    crawler.engine = crawler._create_engine()
    clock = Clock()
    mw = RetryAfterMiddleware(crawler, RetryAfterConfig.from_settings(crawler.settings), clock)
    _, slot = crawler.engine.downloader._get_slot(Request("http://a.test/"))
    return mw, slot, clock


def answer(mw: RetryAfterMiddleware, status: int, retry_after: str | None = None) -> Request:
    request = Request("http://a.test/x", meta={"download_slot": "a.test"})
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    response = Response(request.url, status=status, headers=headers, request=request)
    mw.response_downloaded(response, request, mw.crawler.spider)
    return request


def test_parse_retry_after() -> None:
    assert parse_retry_after(b"3") == 3.0
    assert parse_retry_after(" 120 ") == 120.0
    soon = format_datetime(NOW + timedelta(seconds=10), usegmt=True)
    assert parse_retry_after(soon, now=NOW) == 10.0
    assert parse_retry_after(format_datetime(NOW - timedelta(hours=1), usegmt=True), NOW) == 0.0
    assert parse_retry_after("Fri, 02 Jan 2026 03:04:15", now=NOW) == 10.0  # no zone: GMT
    for bad in ("soon", "-5", "1.5", "", "٣", None):
        assert parse_retry_after(bad, now=NOW) is None


def test_config() -> None:
    with pytest.raises(NotConfigured):
        RetryAfterConfig.from_settings(Settings({"RETRYAFTER_ENABLED": False}))
    config = RetryAfterConfig.from_settings(
        Settings({"RETRYAFTER_BASE_DELAY": 5, "RETRYAFTER_MAX_DELAY": 2})
    )
    assert (config.base_delay, config.max_delay) == (5.0, 5.0)
    assert config.http_codes == frozenset({429, 503})


def test_429_pauses_for_retry_after_and_backoff_grows_to_the_cap() -> None:
    mw, slot, clock = make(RETRYAFTER_MAX_DELAY=8)
    pauses = mw.pauses
    answer(mw, 429, "3")
    assert pauses.remaining("a.test") == 3.0  # Retry-After beats the first backoff (1 s)
    assert slot.latercall is not None  # the slot's queue is held
    assert slot.delay == 1.0
    backoffs = []
    for _ in range(5):
        clock.now += 10
        answer(mw, 429)  # no Retry-After: the backoff alone
        backoffs.append(pauses.remaining("a.test"))
    assert backoffs == [2.0, 4.0, 8.0, 8.0, 8.0]
    assert slot.delay == 8.0
    stats = mw.crawler.stats
    assert stats.get_value("retryafter/throttled/429") == 6
    assert stats.get_value("retryafter/max_backoff") == 8.0
    assert stats.get_value("retryafter/pause_seconds") == 3 + 2 + 4 + 8 * 3


def test_recovery_halves_the_backoff_back_to_the_normal_delay() -> None:
    mw, slot, _ = make()
    for _ in range(3):
        answer(mw, 429)
    assert (mw.hosts["a.test"].backoff, slot.delay) == (4.0, 4.0)
    delays = []
    for status in (200, 404, 200):
        answer(mw, status)
        delays.append(slot.delay)
    assert delays == [2.0, 1.0, 0.5]  # 0.5: DOWNLOAD_DELAY, the slot's own delay
    assert "a.test" not in mw.hosts
    assert mw.crawler.stats.get_value("retryafter/recovered") == 1
    answer(mw, 500)  # not a recovery, not throttling either
    assert slot.delay == 0.5


def test_503_pauses_only_with_retry_after() -> None:
    mw, _, _ = make()
    pauses = mw.pauses
    answer(mw, 503)
    assert pauses.remaining("a.test") == 0
    answer(mw, 503, "2")
    assert pauses.remaining("a.test") == 2.0
    assert mw.crawler.stats.get_value("retryafter/throttled/503") == 1


def test_retry_after_beyond_the_cap_is_not_retried() -> None:
    mw, _, _ = make(RETRYAFTER_MAX_DELAY=60)
    request = answer(mw, 429, "86400")
    assert mw.pauses.remaining("a.test") == 60.0
    assert request.meta["dont_retry"] is True
    assert mw.crawler.stats.get_value("retryafter/too_long") == 1


def test_autothrottle_keeps_the_backoff_as_a_floor_only() -> None:
    mw, slot, _ = make(AUTOTHROTTLE_ENABLED=True)
    answer(mw, 429)
    answer(mw, 429)
    slot.delay = 0.1  # what AutoThrottle's own handler might have set
    answer(mw, 200)
    assert slot.delay == 1.0  # backoff 2 -> 1: the floor


@in_reactor
async def test_hold_releases_the_slot_and_requests_without_a_slot_wait() -> None:
    mw, slot, _ = make()
    pauses = mw.pauses
    pauses.clock = time.monotonic
    pauses.pause("a.test", 0.3)
    assert slot.latercall is not None
    await maybe_deferred_to_future(deferLater(reactor, 0.5, lambda: None))
    assert slot.latercall is None  # released
    pauses.pause("b.test", 0.4)  # a host without a slot: process_request itself waits
    started = time.monotonic()
    await mw.process_request(Request("http://b.test/"))
    assert time.monotonic() - started >= 0.35
    assert mw.crawler.stats.get_value("retryafter/waited") == 1
