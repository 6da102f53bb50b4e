"""``CircuitBreakerMiddleware``: stop sending requests to a host that keeps failing to answer.

Settings: ``CIRCUIT_ENABLED``, ``CIRCUIT_FAILURES``, ``CIRCUIT_COOLDOWN``, ``CIRCUIT_MAX_COOLDOWN``,
``CIRCUIT_MAX_HOLD``.

Per host (downloader slot), three states:

* closed: requests go. Connection failures and timeouts in a row are counted; any answer (any
  HTTP status) resets the count. ``FAILURES`` in a row open the circuit.
* open, for ``COOLDOWN`` seconds: the host's slot is held, as a ``Retry-After`` pause holds it
  (``slotpause.py``): requests queued for the host, arriving for it, or failing to connect to it
  meanwhile wait in that queue (a failure to connect to a host known to be down uses up no retry).
* half-open, after the cool-down: the first waiting request goes alone as a probe. An answer
  closes the circuit and the queue goes on; a failure opens it again for twice as long, up to
  ``MAX_COOLDOWN``.

A host still down ``MAX_HOLD`` seconds after its circuit opened (its last probe is sent at that
time) is given up: its waiting requests fail with ``HostUnavailableError`` (not retried; the
spiders record it like any fetch error, so a rerun fetches them), and so do later ones at once,
but for one probe per cool-down, until the host answers. ``MAX_HOLD`` 0: never wait.

Stats: ``circuit/failures``, ``circuit/opened``, ``circuit/closed``, ``circuit/probes``,
``circuit/held`` (requests that reached a held host), ``circuit/requeued`` (failed to connect
while it was held), ``circuit/gave_up``, ``circuit/rejected``.
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
from scrapy.utils.asyncio import CallLaterResult, call_later
from scrapy.utils.defer import deferred_from_coro
from twisted.internet.error import ConnectError
from twisted.internet.error import TimeoutError as TxTimeoutError

from crawler import defaults

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy import Request, Spider
    from scrapy.core.downloader import Downloader, Slot
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
    max_hold: float
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
            max_hold=max(0.0, settings.getfloat("CIRCUIT_MAX_HOLD", defaults.CIRCUIT_MAX_HOLD)),
            # A probe that never reports back (dropped elsewhere) does not block the host forever.
            probe_timeout=settings.getfloat("DOWNLOAD_TIMEOUT", 180.0) * 2 + 10,
        )


@dataclass
class Circuit:
    failures: int = 0  # connection failures in a row
    cooldown: float = 0.0  # of the last opening; 0 while closed
    open_until: float = 0.0
    probe_until: float = 0.0  # a probe is in flight until then
    down_since: float | None = None  # when it first opened
    gave_up: bool = False  # down past MAX_HOLD: requests fail instead of waiting
    timer: CallLaterResult | None = None  # holds the slot (its latercall) and wakes it
    armed: bool = False  # the timer has not fired yet


class CircuitBreakerMiddleware:
    """Holds a down host's requests until a probe gets an answer (see the module docstring)."""

    def __init__(
        self, crawler: Crawler, config: CircuitConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.crawler = crawler
        self.config = config
        self.clock = clock
        self.circuits: dict[str, Circuit] = {}
        self.watching = False  # the per-request signals are connected

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CircuitBreakerMiddleware:
        mw = cls(crawler, CircuitConfig.from_settings(crawler.settings))
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        return mw

    def _watch(self) -> None:
        """Connect the per-request signals, at the first failure: until a host has a circuit
        both handlers do nothing, and a healthy crawl pays no dispatch for them per page."""
        if self.watching:
            return
        self.watching = True
        connect = self.crawler.signals.connect
        connect(self.response_downloaded, signal=signals.response_downloaded)
        connect(self.request_reached_downloader, signal=signals.request_reached_downloader)

    @property
    def downloader(self) -> Downloader:
        assert self.crawler.engine is not None
        return self.crawler.engine.downloader

    def _held(self, circuit: Circuit | None) -> bool:
        return circuit is not None and circuit.cooldown > 0 and not circuit.gave_up

    def process_request(self, request: Request) -> None:
        request.meta.pop(PROBE, None)  # a retry of an earlier probe is not one
        if not self.circuits:
            return  # every host answers: nothing to look up
        key = self.downloader.get_slot_key(request)
        circuit = self.circuits.get(key)
        if circuit is None or not circuit.gave_up:
            return  # closed, or held: the request waits in the slot's queue
        now = self.clock()
        if now >= circuit.open_until and now >= circuit.probe_until:
            circuit.probe_until = now + self.config.probe_timeout
            request.meta[PROBE] = True
            self.crawler.stats.inc_value("circuit/probes")
            return
        raise self._refuse(request, key, circuit)

    def process_exception(self, request: Request, exception: Exception) -> Request | None:
        if not isinstance(exception, CONNECTION_FAILURES) or "download_slot" not in request.meta:
            return None  # not a failure to connect, or raised before the downloader
        key = self.downloader.get_slot_key(request)
        circuit = self.circuits.setdefault(key, Circuit())
        self._watch()
        circuit.failures += 1
        self.crawler.stats.inc_value("circuit/failures")
        if request.meta.get(PROBE) or (
            circuit.cooldown == 0 and circuit.failures >= self.config.failures
        ):
            self._open(key, circuit, exception)
        if not self._held(circuit):
            return None
        # The host is known to be down: this says nothing about the page, so it waits too.
        self.crawler.stats.inc_value("circuit/requeued")
        return request.replace(dont_filter=True)

    def request_reached_downloader(self, request: Request) -> None:
        key = request.meta.get("download_slot")
        circuit = self.circuits.get(key) if key is not None else None
        if key is not None and circuit is not None and self._held(circuit):
            self.crawler.stats.inc_value("circuit/held")
            self._hold(key, circuit)  # a new slot too; the first arrival after a cool-down probes

    def response_downloaded(self, response: Response, request: Request, spider: Spider) -> None:
        key = request.meta.get("download_slot")
        circuit = self.circuits.pop(key, None) if key is not None else None
        if key is not None and circuit is not None and circuit.cooldown:
            self.crawler.stats.inc_value("circuit/closed")
            logger.info(f"{key} answers again: circuit closed")
            self._release(key, circuit)

    def spider_closed(self) -> None:
        for circuit in self.circuits.values():
            if circuit.timer is not None:
                circuit.timer.cancel()

    def _open(self, key: str, circuit: Circuit, exception: Exception) -> None:
        config, now = self.config, self.clock()
        if circuit.down_since is None:
            circuit.down_since = now
        circuit.cooldown = min(circuit.cooldown * 2 or config.cooldown, config.max_cooldown)
        circuit.open_until = now + circuit.cooldown
        circuit.probe_until = 0.0
        self.crawler.stats.inc_value("circuit/opened")
        last = type(exception).__name__
        cause = f"{circuit.failures} connection failures in a row (last: {last})"
        if circuit.gave_up:
            logger.warning(f"{key}: {cause}: no request to it for {circuit.cooldown:.0f} s")
            return
        deadline = circuit.down_since + config.max_hold
        if now >= deadline:
            self._give_up(key, circuit, cause)
            return
        circuit.open_until = min(circuit.open_until, deadline)  # the last probe: at the deadline
        logger.warning(
            f"{key}: {cause}: its requests wait for a probe in {circuit.open_until - now:.1f} s"
            f" (for {deadline - now:.0f} s more at most, CIRCUIT_MAX_HOLD)"
        )
        self._hold(key, circuit, rearm=True)

    def _hold(self, key: str, circuit: Circuit, rearm: bool = False) -> None:
        """Hold the host's slot until the circuit's next step (probe, or a lost probe)."""
        slot = self.downloader.slots.get(key)
        # A new slot, or one whose hold another took over (a Retry-After pause, the slot's
        # garbage collection): our timer may have been cancelled with it.
        replaced = slot is not None and slot.latercall is not circuit.timer
        if rearm or replaced or not circuit.armed:
            if circuit.timer is not None:
                circuit.timer.cancel()
            wake = max(circuit.open_until, circuit.probe_until) - self.clock()
            circuit.timer = call_later(max(0.0, wake), self._wake, key)
            circuit.armed = True
        if slot is not None and slot.latercall is not circuit.timer:
            if slot.latercall:  # Scrapy's delay timer: _process_queue applies the delay later
                slot.latercall.cancel()
            slot.latercall = circuit.timer

    def _wake(self, key: str) -> None:
        circuit = self.circuits.get(key)
        if circuit is None or not self._held(circuit):
            return
        circuit.armed = False  # the slot stays held: its latercall is this fired timer
        now = self.clock()
        if now < circuit.open_until or now < circuit.probe_until:
            self._hold(key, circuit)
            return
        assert circuit.down_since is not None
        if circuit.probe_until and now >= circuit.down_since + self.config.max_hold:
            self._give_up(key, circuit, "its last probe never reported back")
            return
        slot = self.downloader.slots.get(key)
        if slot is not None and slot.queue:
            self._probe(key, circuit, slot)
        # else: nothing waits; the next request to arrive (request_reached_downloader) probes

    def _probe(self, key: str, circuit: Circuit, slot: Slot) -> None:
        """Send the first waiting request alone, past the held queue."""
        request, result = slot.queue.popleft()
        request.meta[PROBE] = True
        circuit.probe_until = self.clock() + self.config.probe_timeout
        self.crawler.stats.inc_value("circuit/probes")
        self._hold(key, circuit)
        # What Downloader._process_queue does for each request it sends (Scrapy 2.19).
        deferred_from_coro(self.downloader._wait_for_download(slot, request, result))

    def _release(self, key: str, circuit: Circuit) -> None:
        timer, circuit.timer, circuit.armed = circuit.timer, None, False
        if timer is None:
            return
        timer.cancel()
        slot = self.downloader.slots.get(key)
        if slot is not None and slot.latercall is timer:
            slot.latercall = None
            self.downloader._process_queue(slot)

    def _give_up(self, key: str, circuit: Circuit, cause: str) -> None:
        circuit.gave_up = True
        self.crawler.stats.inc_value("circuit/gave_up")
        assert circuit.down_since is not None
        if self.config.max_hold:
            logger.warning(
                f"{key}: {cause}: still down {self.clock() - circuit.down_since:.0f} s after its"
                f" circuit opened (CIRCUIT_MAX_HOLD): its requests fail until a probe is answered"
            )
        else:
            logger.warning(f"{key}: {cause}: no request to it for {circuit.cooldown:.0f} s")
        slot = self.downloader.slots.get(key)
        waiting = list(slot.queue) if slot is not None else []
        if slot is not None:
            slot.queue.clear()
        self._release(key, circuit)  # the queue is empty: nothing is sent
        for request, result in waiting:
            result.errback(self._refuse(request, key, circuit))

    def _refuse(self, request: Request, key: str, circuit: Circuit) -> HostUnavailableError:
        self.crawler.stats.inc_value("circuit/rejected")
        request.meta["dont_retry"] = True
        left = max(0.0, circuit.open_until - self.clock())
        state = f"circuit open for {left:.0f} s more" if left else "circuit probing"
        if self.config.max_hold:
            state = f"gave up after waiting {self.config.max_hold:g} s (CIRCUIT_MAX_HOLD), {state}"
        return HostUnavailableError(
            f"{key} is not answering ({circuit.failures} connection failures in a row): {state}"
        )
