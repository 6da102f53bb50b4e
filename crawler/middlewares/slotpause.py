"""Hold a host's downloader slot until a deadline: no request leaves its queue before then.

Used by ``RetryAfterMiddleware``. Two pauses of one host combine (the later deadline wins).
Requests waiting in a held slot count as the slot's active requests, so Scrapy's
``DownloaderAwarePriorityQueue`` sends other hosts' requests first meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scrapy.utils.asyncio import CallLaterResult, call_later

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy import Request
    from scrapy.core.downloader import Downloader, Slot
    from scrapy.crawler import Crawler


@dataclass
class _Hold:
    slot: Slot
    until: float
    call: CallLaterResult


class SlotPauses:
    """Per-host deadlines, and the slot queues held until them."""

    def __init__(self, crawler: Crawler, clock: Callable[[], float] = time.monotonic) -> None:
        self.crawler = crawler
        self.clock = clock
        self._until: dict[str, float] = {}
        self._holds: dict[str, _Hold] = {}

    @property
    def downloader(self) -> Downloader:
        assert self.crawler.engine is not None
        return self.crawler.engine.downloader

    @property
    def paused(self) -> bool:
        """Has any host been paused in this crawl? (Until then no request needs a look.)"""
        return bool(self._until)

    def key(self, request: Request) -> str:
        """The host of a request: its downloader slot key (hostname, or ``download_slot``)."""
        return self.downloader.get_slot_key(request)

    def remaining(self, key: str) -> float:
        """Seconds until ``key`` may be sent requests again (0 when it is not paused)."""
        return max(0.0, self._until.get(key, 0.0) - self.clock())

    def pause(self, key: str, seconds: float) -> None:
        """No request to ``key`` for ``seconds`` (an earlier, longer pause is kept)."""
        self._until[key] = max(self._until.get(key, 0.0), self.clock() + seconds)
        self.hold(key)

    def hold(self, key: str) -> bool:
        """Hold the slot of a paused host; False when it has no slot (nothing is queued)."""
        left = self.remaining(key)
        slot = self.downloader.slots.get(key)
        if slot is None or left <= 0:
            return False
        held = self._holds.get(key)
        until = self.clock() + left
        if held and held.slot is slot and held.call is slot.latercall and held.until >= until:
            return True
        if slot.latercall:  # Scrapy's own delay timer: _process_queue re-applies the delay later
            slot.latercall.cancel()
        call = call_later(left, self._release, key, slot)
        slot.latercall = call
        self._holds[key] = _Hold(slot, until, call)
        return True

    def _release(self, key: str, slot: Slot) -> None:
        held = self._holds.get(key)
        if held is None or held.slot is not slot or slot.latercall is not held.call:
            return
        del self._holds[key]
        slot.latercall = None
        # What Scrapy's own delay timer calls when it fires: send what the delay allows.
        self.downloader._process_queue(slot)
