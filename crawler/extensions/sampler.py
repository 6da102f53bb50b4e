"""``RunSampler``: what a crawl looked like over time, and what its responses looked like.

Every ``SAMPLE_INTERVAL`` seconds and once at close, a ``run_samples`` row
(``crawler.storage.samples``) holds this process's figures so far: pages, items, errors, rejects
(as in the runs row, ``crawler.stats.run_counts``), response body bytes, pages fetched by the
browser, and the requests in flight and queued at that moment. Rows are written only for a run
row (``run/id``, set by ``RunRecorder`` when the spider opens), as worker ``WORKER_INDEX``; a
store error is logged once (WARNING) and never fails the crawl.

The spider's responses (not the crawler's own requests, such as robots.txt) are also counted in
the stats: ``metrics/latency_ms`` (download latency histogram, ``LATENCY_BUCKETS`` in ms),
``metrics/hosts`` (pages, errors and body bytes per host name; past ``SAMPLE_MAX_HOSTS`` hosts,
summed under ``(other)``; errors are responses of HTTP 400 or more and requests that failed
without a response, see ``crawler.signals.fetch_failed``) and ``metrics/fetch_kinds`` (``http``
or ``browser``). These dicts are this extension's own, put in the stats when the spider opens
and updated in place: a counter per response, no copy, and current when ``RunRecorder`` (which
closes before this extension) stores the final stats.

Settings: ``SAMPLE_ENABLED``, ``SAMPLE_INTERVAL``, ``SAMPLE_MAX_HOSTS``; loaded with
``RUN_RECORD`` and ``SQLITE_ENABLED`` like ``RunRecorder`` (not with ``REDIS_ITEMS`` outside a
``WORKERS`` child: ``scrapy ingest`` records that run).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import task

from crawler import defaults
from crawler import stats as keys
from crawler.frontier.itemstream import redis_items_wanted
from crawler.meta import is_own_request
from crawler.pageinfo import fetched_with
from crawler.signals import fetch_failed
from crawler.storage import StoreError, store_for
from crawler.storage.samples import Sample, add_sample

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from scrapy.statscollectors import StatsCollector
    from twisted.internet.interfaces import IReactorTime
    from twisted.python.failure import Failure

    from crawler.storage import Store

logger = logging.getLogger(__name__)

# upper bounds of the download latency histogram, in milliseconds (keys of metrics/latency_ms)
LATENCY_BUCKETS: tuple[int | str, ...] = (50, 100, 200, 500, 1000, 2000, 5000, 10000, "inf")
_BOUNDS = tuple(b / 1000 for b in LATENCY_BUCKETS if isinstance(b, int))  # seconds
_LABELS = tuple(str(b) for b in LATENCY_BUCKETS)
OTHER_HOSTS = "(other)"  # the hosts past SAMPLE_MAX_HOSTS, summed


@dataclass(frozen=True)
class SamplerConfig:
    interval: float = defaults.SAMPLE_INTERVAL
    max_hosts: int = defaults.SAMPLE_MAX_HOSTS
    worker: int = 0  # WORKER_INDEX

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> SamplerConfig:
        raw = settings.get("SAMPLE_INTERVAL", defaults.SAMPLE_INTERVAL)
        try:
            interval = float(raw)
        except (TypeError, ValueError):
            interval = float("nan")
        if not interval > 0:  # NaN too
            logger.warning(
                f"SAMPLE_INTERVAL must be a number of seconds above 0, not {raw!r}:"
                f" using {defaults.SAMPLE_INTERVAL}"
            )
            interval = defaults.SAMPLE_INTERVAL
        max_hosts = settings.getint("SAMPLE_MAX_HOSTS", defaults.SAMPLE_MAX_HOSTS)
        if max_hosts < 0:
            logger.warning(
                f"SAMPLE_MAX_HOSTS must be 0 or more, not {max_hosts}:"
                f" using {defaults.SAMPLE_MAX_HOSTS}"
            )
            max_hosts = defaults.SAMPLE_MAX_HOSTS
        return cls(interval, max_hosts, settings.getint("WORKER_INDEX", 0))


class RunSampler:
    """Writes a ``run_samples`` row every ``SAMPLE_INTERVAL`` and counts response figures."""

    def __init__(self, crawler: Crawler, store: Store, config: SamplerConfig | None = None) -> None:
        self.crawler = crawler
        self.store = store
        store.hold()
        self.config = config or SamplerConfig()
        self.run_id: int | None = None
        self.started = time.monotonic()
        self.clock: IReactorTime | None = None  # the reactor unless a test sets one
        self.loop: task.LoopingCall | None = None
        self._failed = False  # a store error was logged: the next ones at DEBUG
        # the figures, published as they are (see the module docstring)
        self.bytes = 0
        self.latency: dict[str, int] = dict.fromkeys(_LABELS, 0)
        self.hosts: dict[str, dict[str, int]] = {}
        self.kinds: dict[str, int] = {"http": 0, "browser": 0}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunSampler:
        settings = crawler.settings
        if not settings.getbool("SAMPLE_ENABLED", defaults.SAMPLE_ENABLED):
            raise NotConfigured("SAMPLE_ENABLED is off")
        if not settings.getbool("RUN_RECORD", defaults.RUN_RECORD):
            raise NotConfigured  # no run row to sample (shell, fetch, parse, check)
        if redis_items_wanted(settings) and not settings.getint("WORKER_RUN_ID"):
            raise NotConfigured("REDIS_ITEMS: the ingester records the run")
        store = store_for(crawler)  # NotConfigured when SQLITE_ENABLED is off
        ext = cls(crawler, store, SamplerConfig.from_settings(settings))
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.response_received, signal=signals.response_received)
        crawler.signals.connect(ext.fetch_failed, signal=fetch_failed)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self) -> None:
        self.started = time.monotonic()
        stats = self._stats()
        stats.set_value(keys.LATENCY_MS, self.latency)
        stats.set_value(keys.HOSTS, self.hosts)
        stats.set_value(keys.FETCH_KINDS, self.kinds)
        run_id = stats.get_value(keys.RUN_ID)  # RunRecorder (100) opened the run before us
        if run_id is None:
            return  # no run row: the store failed to open, and the crawl is closing
        self.run_id = int(run_id)
        self.loop = task.LoopingCall(self.sample)
        if self.clock is not None:
            self.loop.clock = self.clock
        self.loop.start(self.config.interval, now=False).addErrback(self._loop_failed)

    def response_received(self, response: Response, request: Request) -> None:
        if is_own_request(request):
            return  # robots.txt: not one of the spider's pages
        size = len(response.body)
        self.bytes += size
        figures = self._host(request)
        figures["pages"] += 1
        figures["bytes"] += size
        if response.status >= 400:
            figures["errors"] += 1
        latency = request.meta.get("download_latency")
        if latency is not None:
            self.latency[_LABELS[bisect_left(_BOUNDS, latency)]] += 1
        self.kinds[fetched_with(response)] += 1

    def fetch_failed(self, request: Request, failure: Failure) -> None:
        """A request that failed without a response (its HTTP errors were counted above)."""
        exc = failure.value
        if isinstance(exc, IgnoreRequest) or is_own_request(request):
            return  # not fetched on purpose: robots.txt, a blocked target, a recrawl's skip
        if getattr(exc, "response", None) is None:
            self._host(request)["errors"] += 1

    def _host(self, request: Request) -> dict[str, int]:
        host = urlparse_cached(request).hostname or ""
        figures = self.hosts.get(host)
        if figures is None:
            named = len(self.hosts) - (OTHER_HOSTS in self.hosts)
            key = host if named < self.config.max_hosts else OTHER_HOSTS
            figures = self.hosts.get(key)
            if figures is None:
                figures = self.hosts[key] = {"pages": 0, "errors": 0, "bytes": 0}
        return figures

    def sample(self) -> None:
        """One ``run_samples`` row with the figures so far."""
        if self.run_id is None or not self.store.is_open:
            return
        try:
            add_sample(
                self.store.conn, self.run_id, self.config.worker, self.store.now(), self.figures()
            )
        except (StoreError, sqlite3.Error) as exc:
            log = logger.debug if self._failed else logger.warning
            log(f"SQLite store: run_samples of run {self.run_id} not written: {exc}")
            self._failed = True

    def figures(self) -> Sample:
        counts = keys.run_counts(self._stats().get_stats())
        in_flight, queued = self._gauges()
        return Sample(
            elapsed=round(time.monotonic() - self.started, 3),
            pages=counts.pages,
            items=counts.items,
            errors=counts.errors,
            rejects=counts.rejects,
            bytes=self.bytes,
            rendered=self.kinds["browser"],
            in_flight=in_flight,
            queued=queued,
        )

    def _gauges(self) -> tuple[int, int]:
        """Requests in the downloader and in the scheduler now; 0 when there is no engine (yet,
        or any more) or its scheduler has no length."""
        try:
            engine = self.crawler.engine
            in_flight = len(engine.downloader.active)
        except (RuntimeError, AttributeError):  # Crawler.engine is not set yet
            return 0, 0
        try:
            queued = len(engine.scheduler)  # type: ignore[arg-type]
        except (TypeError, AttributeError):
            queued = 0
        return in_flight, queued

    def _loop_failed(self, failure: Failure) -> None:
        logger.error("Run sampling stopped: %s", failure.getErrorMessage())

    def spider_closed(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.loop = None
        try:
            self.sample()  # the last row: the run's final figures
        finally:
            self.store.release()

    def _stats(self) -> StatsCollector:
        stats = self.crawler.stats
        assert stats is not None
        return stats
