"""``RetryAfterMiddleware``: a host that answers 429 (or 503 with ``Retry-After``) is left alone.

Settings: ``RETRYAFTER_ENABLED``, ``RETRYAFTER_HTTP_CODES`` (429, 503), ``RETRYAFTER_BASE_DELAY``,
``RETRYAFTER_MAX_DELAY``.

On such an answer no request goes to that host (its downloader slot) until the later of
``Retry-After`` (seconds or an HTTP date) and the host's backoff has passed: the slot's queue is
held, and requests that have no slot yet wait in ``process_request``. Each such answer doubles the
host's backoff (``BASE`` … ``MAX``) and raises the slot's delay to it; each other answer below 500
halves it until the host is back to its own delay. Scrapy's ``RetryMiddleware`` retries the request,
and the retry waits like any other. A ``Retry-After`` beyond ``MAX`` pauses the host for ``MAX`` and
that request is not retried: it ends as its HTTP error. A 503 without ``Retry-After`` is an
ordinary server error (retried by Scrapy, no pause).

Stats: ``retryafter/throttled`` (and ``/<status>``), ``retryafter/pause_seconds`` (rounded up),
``retryafter/max_backoff``, ``retryafter/too_long``, ``retryafter/waited`` (requests that waited
outside a slot), ``retryafter/recovered`` (hosts back to their own delay).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import sleep

from crawler import defaults
from crawler.middlewares.slotpause import SlotPauses

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)


def parse_retry_after(value: bytes | str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date), or None."""
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryAfterConfig:
    http_codes: frozenset[int]
    base_delay: float
    max_delay: float

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RetryAfterConfig:
        if not settings.getbool("RETRYAFTER_ENABLED", defaults.RETRYAFTER_ENABLED):
            raise NotConfigured("RETRYAFTER_ENABLED is off")
        base = settings.getfloat("RETRYAFTER_BASE_DELAY", defaults.RETRYAFTER_BASE_DELAY)
        return cls(
            http_codes=frozenset(
                int(c)
                for c in settings.getlist("RETRYAFTER_HTTP_CODES", defaults.RETRYAFTER_HTTP_CODES)
            ),
            base_delay=base,
            max_delay=max(
                base, settings.getfloat("RETRYAFTER_MAX_DELAY", defaults.RETRYAFTER_MAX_DELAY)
            ),
        )


@dataclass
class HostBackoff:
    """One host's backoff, and its slot delay before the backoff began."""

    backoff: float = 0.0
    normal_delay: float | None = None


class RetryAfterMiddleware:
    """Pauses a host on 429 / 503 + ``Retry-After``, with exponential backoff per host."""

    def __init__(
        self,
        crawler: Crawler,
        config: RetryAfterConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.crawler = crawler
        self.config = config
        self.clock = clock
        self.hosts: dict[str, HostBackoff] = {}
        self.pauses = SlotPauses(crawler, clock)
        self.autothrottle = crawler.settings.getbool("AUTOTHROTTLE_ENABLED")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RetryAfterMiddleware:
        mw = cls(crawler, RetryAfterConfig.from_settings(crawler.settings))
        # A signal, not process_response: it runs before the slot sends its next request.
        crawler.signals.connect(mw.response_downloaded, signal=signals.response_downloaded)
        return mw

    async def process_request(self, request: Request) -> None:
        pauses = self.pauses
        if not pauses.paused:
            return  # no host was ever paused: no slot key to work out per request
        key = pauses.key(request)
        counted = False
        while (left := pauses.remaining(key)) > 0:
            if pauses.hold(key):
                return  # the request waits in the slot's held queue
            if not counted:
                self.crawler.stats.inc_value("retryafter/waited")
                counted = True
            await sleep(left)

    def response_downloaded(self, response: Response, request: Request, spider: Spider) -> None:
        key = request.meta.get("download_slot")
        if key is None:
            return
        if response.status in self.config.http_codes and (
            response.status == 429 or b"Retry-After" in response.headers
        ):
            self._throttled(key, request, response)
        elif response.status < 500 and key in self.hosts:
            self._recovering(key)

    def _throttled(self, key: str, request: Request, response: Response) -> None:
        config, stats = self.config, self.crawler.stats
        slot = self.pauses.downloader.slots.get(key)
        host = self.hosts.setdefault(key, HostBackoff())
        if host.backoff == 0 and slot is not None:
            host.normal_delay = slot.delay
        host.backoff = min(max(host.backoff * 2, config.base_delay), config.max_delay)
        asked = parse_retry_after(response.headers.get(b"Retry-After"))
        pause = max(asked or 0.0, host.backoff)
        if pause > config.max_delay:
            pause = config.max_delay
            request.meta["dont_retry"] = True  # RetryMiddleware reads it when the 429 reaches it
            stats.inc_value("retryafter/too_long")
        if slot is not None:
            slot.delay = max(slot.delay, host.backoff)
        self.pauses.pause(key, pause)
        stats.inc_value("retryafter/throttled")
        stats.inc_value(f"retryafter/throttled/{response.status}")
        stats.inc_value("retryafter/pause_seconds", math.ceil(pause))
        stats.max_value("retryafter/max_backoff", host.backoff)
        logger.info(
            f"{key} answered {response.status} (Retry-After: {asked}): no request to it for "
            f"{pause:.1f} s, then one every {host.backoff:.1f} s or more"
        )

    def _recovering(self, key: str) -> None:
        host = self.hosts[key]
        host.backoff /= 2
        if host.backoff < self.config.base_delay:
            host.backoff = 0.0
            del self.hosts[key]
            self.crawler.stats.inc_value("retryafter/recovered")
            logger.info(f"{key} recovered from its backoff")
        slot = self.pauses.downloader.slots.get(key)
        if slot is None:
            return
        if self.autothrottle:
            # AutoThrottle lowers the delay itself, gradually: keep the backoff as a floor only.
            slot.delay = max(slot.delay, host.backoff)
        else:
            slot.delay = max(host.normal_delay or 0.0, host.backoff)
