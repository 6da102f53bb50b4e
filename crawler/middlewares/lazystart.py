"""``LazyStartMiddleware``: read ``start()`` only as fast as the downloader takes requests.

Scrapy 2.19's engine keeps pulling ``start()`` for as long as the downloader is full (it only
pauses when there is room), so a spider seeding from a file of a million URLs moves all of them
into the scheduler (memory, or JOBDIR on disk) within its first seconds, and the event loop does
nothing else meanwhile. This spider middleware holds ``start()`` while
``engine.needs_backout()``: the URL file stays the frontier, memory stays flat whatever its size,
and the first pages are processed at once.

Settings: ``LAZYSTART_ENABLED`` (default True). A request leaving the downloader wakes the wait;
a poll every ``POLL_SECONDS`` covers the scraper's own back-out (too many responses in process).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scrapy.crawler import Crawler

POLL_SECONDS = 0.1


class LazyStartMiddleware:
    """Yields the next start request only when the engine has room for it."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self._room: asyncio.Event | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LazyStartMiddleware:
        if not crawler.settings.getbool("LAZYSTART_ENABLED", True):
            raise NotConfigured("LAZYSTART_ENABLED is off")
        middleware = cls(crawler)
        crawler.signals.connect(middleware.wake, signal=signals.request_left_downloader)
        return middleware

    def wake(self) -> None:
        if self._room is not None:
            self._room.set()

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for item_or_request in start:
            await self.wait_for_room()
            yield item_or_request

    async def wait_for_room(self) -> None:
        engine = self.crawler.engine
        while engine is not None and engine.needs_backout():
            if self._room is None:
                self._room = asyncio.Event()  # created inside the running loop
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), POLL_SECONDS)
