"""``LazyStartMiddleware``: read ``start()`` only as fast as the crawl uses its requests.

Scrapy 2.19's engine keeps pulling ``start()`` for as long as the downloader is full (it only
pauses when there is room), so a spider seeding from a file of a million URLs moves all of them
into the scheduler (memory, or JOBDIR on disk) within its first seconds, and the event loop does
nothing else meanwhile. This spider middleware keeps at most ``LAZYSTART_BUFFER`` requests
waiting in the scheduler: the URL file stays the frontier, memory stays flat whatever its size,
and the first pages are processed at once.

``start()`` is read in bursts: once the scheduler holds ``LAZYSTART_BUFFER`` requests, reading
pauses until it is down to half of them, then refills. Waiting once per half-buffer rather than
once per request matters: a wait per request cost about an eighth of the CPU of a latency-bound
crawl (``bench/README.md``).

Settings: ``LAZYSTART_ENABLED`` (default True), ``LAZYSTART_BUFFER`` (default 0: the value of
``CONCURRENT_REQUESTS``). A request leaving the downloader wakes the wait; a poll every
``POLL_SECONDS`` covers requests that leave the scheduler without reaching the downloader.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler import defaults

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scrapy.crawler import Crawler

POLL_SECONDS = 0.1


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class LazyStartMiddleware:
    """Yields start requests while the scheduler holds fewer than ``LAZYSTART_BUFFER``."""

    def __init__(self, crawler: Crawler, buffer: int) -> None:
        self.crawler = crawler
        self.high = max(1, buffer)
        self.low = self.high // 2
        self._waiter: asyncio.Future[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LazyStartMiddleware:
        settings = crawler.settings
        if not settings.getbool("LAZYSTART_ENABLED", defaults.LAZYSTART_ENABLED):
            raise NotConfigured("LAZYSTART_ENABLED is off")
        buffer = settings.getint("LAZYSTART_BUFFER", defaults.LAZYSTART_BUFFER)
        if buffer < 0:
            raise ValueError(f"LAZYSTART_BUFFER must be 0 or more, not {buffer}")
        middleware = cls(crawler, buffer or settings.getint("CONCURRENT_REQUESTS"))
        crawler.signals.connect(middleware.wake, signal=signals.request_left_downloader)
        return middleware

    def queued(self) -> int:
        """Requests waiting in the scheduler (for a scheduler without a length: full or empty)."""
        engine = self.crawler.engine
        if engine is None or engine.scheduler is None:
            return 0
        try:
            return len(engine.scheduler)  # type: ignore[arg-type]
        except TypeError:
            return self.high if engine.needs_backout() else 0

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self.queued() <= self.low:
            waiter.set_result(None)

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for item_or_request in start:
            if self.queued() >= self.high:
                await self.wait_for_room()
            yield item_or_request

    async def wait_for_room(self) -> None:
        """Return once the scheduler is down to half the buffer."""
        loop = asyncio.get_running_loop()
        while self.queued() > self.low:
            waiter = self._waiter = loop.create_future()
            # a plain future and a timer: asyncio.wait_for would start a task on every wait
            timer = loop.call_later(POLL_SECONDS, _release, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
