"""``CircuitBreakerMiddleware``: stop sending requests to a host that keeps failing to answer.

Settings: ``CIRCUIT_ENABLED``, ``CIRCUIT_FAILURES``, ``CIRCUIT_COOLDOWN``, ``CIRCUIT_MAX_COOLDOWN``.

Per host (downloader slot), three states:

* closed: requests go. Connection failures and timeouts in a row are counted; any answer (any
  HTTP status) resets the count. ``FAILURES`` in a row open the circuit.
* open, for ``COOLDOWN`` seconds: requests to the host fail at once with ``HostUnavailableError``,
  those already waiting in the downloader's queue included (not retried; the spiders record it
  like any fetch error, so a rerun fetches them). Other hosts go on.
* half-open, after the cool-down: one request goes as a probe (others keep failing fast until it
  ends). An answer closes the circuit; a failure opens it again for twice as long, up to
  ``MAX_COOLDOWN``.

Stats: ``circuit/failures``, ``circuit/opened``, ``circuit/closed``, ``circuit/probes``,
``circuit/rejected``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    NotConfigured,
)
from twisted.internet.error import ConnectError
from twisted.internet.error import TimeoutError as TxTimeoutError

from crawler import defaults

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy import Request, Spider
    from scrapy.core.downloader import Downloader
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

# The host did not answer at all (an answer cut short still proves it is up).
CONNECTION_FAILURES: tuple[type[Exception], ...] = (
    DownloadTimeoutError,
    DownloadConnectionRefusedError,
    CannotResolveHostError,
    ConnectError,
    TxTimeoutError,
)
PROBE = "circuit_probe"  # meta key of the one request sent to a half-open circuit


class HostUnavailableError(Exception):
    """A request refused without sending it: its host's circuit is open."""


@dataclass(frozen=True)
class CircuitConfig:
    failures: int
    cooldown: float
    max_cooldown: float
    probe_timeout: float

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> CircuitConfig:
        if not settings.getbool("CIRCUIT_ENABLED", defaults.CIRCUIT_ENABLED):
            raise NotConfigured("CIRCUIT_ENABLED is off")
        cooldown = settings.getfloat("CIRCUIT_COOLDOWN", defaults.CIRCUIT_COOLDOWN)
        return cls(
            failures=max(1, settings.getint("CIRCUIT_FAILURES", defaults.CIRCUIT_FAILURES)),
            cooldown=cooldown,
            max_cooldown=max(
                cooldown, settings.getfloat("CIRCUIT_MAX_COOLDOWN", defaults.CIRCUIT_MAX_COOLDOWN)
            ),
            # A probe that never reports back (dropped elsewhere) does not block the host forever.
            probe_timeout=settings.getfloat("DOWNLOAD_TIMEOUT", 180.0) * 2 + 10,
        )


@dataclass
class Circuit:
    failures: int = 0  # connection failures in a row
    cooldown: float = 0.0  # of the last opening; 0 while closed
    open_until: float = 0.0
    probe_until: float = 0.0  # a probe is in flight until then


class CircuitBreakerMiddleware:
    """Fails requests fast while their host is down; one probe after each cool-down."""

    def __init__(
        self, crawler: Crawler, config: CircuitConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.crawler = crawler
        self.config = config
        self.clock = clock
        self.circuits: dict[str, Circuit] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CircuitBreakerMiddleware:
        mw = cls(crawler, CircuitConfig.from_settings(crawler.settings))
        crawler.signals.connect(mw.response_downloaded, signal=signals.response_downloaded)
        return mw

    @property
    def downloader(self) -> Downloader:
        assert self.crawler.engine is not None
        return self.crawler.engine.downloader

    def process_request(self, request: Request) -> None:
        request.meta.pop(PROBE, None)  # a retry of an earlier probe is not one
        key = self.downloader.get_slot_key(request)
        circuit = self.circuits.get(key)
        if circuit is None or circuit.cooldown == 0:
            return
        now = self.clock()
        if now >= circuit.open_until and now >= circuit.probe_until:
            circuit.probe_until = now + self.config.probe_timeout
            request.meta[PROBE] = True
            self.crawler.stats.inc_value("circuit/probes")
            return
        raise self._refuse(request, key, circuit)

    def process_exception(self, request: Request, exception: Exception) -> None:
        if not isinstance(exception, CONNECTION_FAILURES) or "download_slot" not in request.meta:
            return  # not a failure to connect, or raised before the downloader (no connection)
        key = self.downloader.get_slot_key(request)
        circuit = self.circuits.setdefault(key, Circuit())
        circuit.failures += 1
        self.crawler.stats.inc_value("circuit/failures")
        if request.meta.get(PROBE) or (
            circuit.cooldown == 0 and circuit.failures >= self.config.failures
        ):
            self._open(key, circuit, exception)

    def response_downloaded(self, response: Response, request: Request, spider: Spider) -> None:
        key = request.meta.get("download_slot")
        circuit = self.circuits.pop(key, None) if key is not None else None
        if circuit is not None and circuit.cooldown:
            self.crawler.stats.inc_value("circuit/closed")
            logger.info(f"{key} answers again: circuit closed")

    def _open(self, key: str, circuit: Circuit, exception: Exception) -> None:
        config = self.config
        circuit.cooldown = min(circuit.cooldown * 2 or config.cooldown, config.max_cooldown)
        circuit.open_until = self.clock() + circuit.cooldown
        circuit.probe_until = 0.0
        self.crawler.stats.inc_value("circuit/opened")
        logger.warning(
            f"{key}: {circuit.failures} connection failures in a row (last: "
            f"{type(exception).__name__}): no request to it for {circuit.cooldown:.0f} s"
        )
        slot = self.downloader.slots.get(key)
        waiting = list(slot.queue) if slot is not None else []
        if slot is not None:
            slot.queue.clear()
        for request, result in waiting:  # queued before the circuit opened: refused as well
            result.errback(self._refuse(request, key, circuit))

    def _refuse(self, request: Request, key: str, circuit: Circuit) -> HostUnavailableError:
        self.crawler.stats.inc_value("circuit/rejected")
        request.meta["dont_retry"] = True
        left = max(0.0, circuit.open_until - self.clock())
        state = f"open for {left:.0f} s more" if left else "probing"
        return HostUnavailableError(
            f"{key} is not answering ({circuit.failures} connection failures in a row):"
            f" circuit {state}"
        )
