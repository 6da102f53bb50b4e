"""``RunRecorder``: one row per crawl in the store's ``runs`` table, and every rejected item.

Settings: ``RUN_RECORD`` (off: not loaded; ``scrapy crawl`` and ``scrapy runspider`` switch it
on, so ``shell``, ``fetch``, ``parse`` and ``check`` leave no row), ``SQLITE_ENABLED`` (off: not
loaded), ``REDIS_ITEMS`` with ``FRONTIER = "redis"`` (not loaded: ``scrapy ingest`` records the
run of all the workers; a ``WORKERS`` child still keeps its row in its parent's run, without the
rejects, which go to the stream), ``CRAWL_PROFILE`` (recorded), and every setting
given on the command line (``-s``), recorded with secrets masked by the one secret policy
(``crawler.safety.secrets``: by name, known secret values, URL credentials), as are the spider's
arguments, the final stats and the failure text. The run row is inserted when
the spider opens (its id goes to the ``run/id`` stat) and completed when it closes: finish
reason, counts, exit status (the health monitor's verdict, see ``crawler.stats``), why the run
failed, and the final stats.

Each crawl process also has a ``run_workers`` row (host, pid, heartbeat; see
``crawler.storage.liveness``): inserted when the spider opens, renewed every
``RUN_HEARTBEAT_SECONDS`` with the pages and items so far, and finished at close. Before that,
runs whose processes are gone (pid gone from this host, or silent for ``RUN_STALE_SECONDS``) are
marked ``killed``. The run row records the frontier job (the ``frontier/job_id`` stat the
scheduler sets when it opens). With ``WORKER_RUN_ID`` (set by the workers parent on each child's
command line) the process attaches to that run as worker ``WORKER_INDEX``: it neither inserts
nor finishes the run row, which the parent owns.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import CloseSpider, NotConfigured
from scrapy.settings import SETTINGS_PRIORITIES
from twisted.internet import task

from crawler import defaults
from crawler import stats as keys
from crawler.exceptions import RejectItem
from crawler.frontier.itemstream import redis_items_wanted
from crawler.safety.secrets import Redactor, arguments_secrets, masked, settings_secrets
from crawler.storage import STORE_ERROR, StoreError, open_for_crawl, store_for
from crawler.storage.liveness import reap_dead_runs, this_host
from crawler.storage.quality import RunQuality
from crawler.storage.store import UNSAVED_ITEMS

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from scrapy.statscollectors import StatsCollector
    from twisted.internet.interfaces import IReactorTime
    from twisted.python.failure import Failure

    from crawler.stats import RunCounts
    from crawler.storage import Store

logger = logging.getLogger(__name__)


def command_line_settings(
    settings: BaseSettings, redactor: Redactor | None = None
) -> dict[str, Any]:
    """The settings given with ``-s`` (cmdline priority), secrets masked."""
    cmdline = SETTINGS_PRIORITIES["cmdline"]
    mask = redactor.mask if redactor is not None else masked
    return {
        name: mask(name, settings[name])
        for name in sorted(settings)
        if (settings.getpriority(name) or 0) >= cmdline
    }


@dataclass(frozen=True)
class RecorderConfig:
    heartbeat_seconds: float = defaults.RUN_HEARTBEAT_SECONDS
    stale_seconds: float = defaults.RUN_STALE_SECONDS
    attach_run: int | None = None  # WORKER_RUN_ID: the parent's run row
    worker: int = 0  # WORKER_INDEX

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RecorderConfig:
        heartbeat = settings.getfloat("RUN_HEARTBEAT_SECONDS", defaults.RUN_HEARTBEAT_SECONDS)
        stale = settings.getfloat("RUN_STALE_SECONDS", defaults.RUN_STALE_SECONDS)
        if heartbeat <= 0 or stale <= heartbeat:  # every live process would look dead
            logger.warning(
                f"RUN_STALE_SECONDS ({stale}) must be above RUN_HEARTBEAT_SECONDS ({heartbeat}),"
                " and both above 0:"
                f" using {defaults.RUN_STALE_SECONDS} and {defaults.RUN_HEARTBEAT_SECONDS}"
            )
            heartbeat, stale = defaults.RUN_HEARTBEAT_SECONDS, defaults.RUN_STALE_SECONDS
        attach = settings.getint("WORKER_RUN_ID", 0)  # internal: no project default
        return cls(heartbeat, stale, attach or None, settings.getint("WORKER_INDEX", 0))


class RunRecorder:
    """Writes the ``runs`` row of a crawl, its ``run_workers`` row and heartbeat, and a
    ``rejects`` row per ``RejectItem``."""

    def __init__(
        self, crawler: Crawler, store: Store, config: RecorderConfig | None = None
    ) -> None:
        self.crawler = crawler
        self.store = store
        store.hold()
        self.config = config or RecorderConfig()
        self.run_id: int | None = None
        self.worker_started = False
        self.carried = (0, 0)  # pages, items of this worker's earlier process (a restart)
        self.redactor = Redactor(())  # this crawl's secrets, known when the spider opens
        self.clock: IReactorTime | None = None  # the reactor unless a test sets one
        self.loop: task.LoopingCall | None = None
        self._heartbeat_failed = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunRecorder:
        if not crawler.settings.getbool("RUN_RECORD", defaults.RUN_RECORD):
            raise NotConfigured  # only crawl and runspider record runs: no warning for the others
        if redis_items_wanted(crawler.settings) and not crawler.settings.getint("WORKER_RUN_ID"):
            # scrapy ingest records the distributed run (a WORKERS child keeps its parent's row)
            raise NotConfigured("REDIS_ITEMS: the ingester records the run")
        config = RecorderConfig.from_settings(crawler.settings)
        ext = cls(crawler, store_for(crawler), config)  # NotConfigured when SQLITE_ENABLED is off
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.engine_started, signal=signals.engine_started)
        crawler.signals.connect(ext.item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Spider) -> None:
        # Runs after the pipelines' open_spider: the store may already be open (or have failed).
        open_for_crawl(self.store)
        settings = self.crawler.settings
        arguments = getattr(spider, "arguments", {})
        self.redactor = Redactor(settings_secrets(settings) | arguments_secrets(arguments))
        try:
            if self.config.attach_run is not None:
                # this worker's row first: its run is not taken for dead (all its workers gone)
                self.run_id = self._attach(self.config.attach_run)
                self._start_worker(self.run_id)
                self._reap()
            else:
                self._reap()
                job = self._stats().get_value(keys.FRONTIER_JOB_ID)
                self.run_id = self.store.start_run(
                    spider.name,
                    arguments=self.redactor.mask("", arguments),
                    profile=settings.get("CRAWL_PROFILE"),
                    settings=command_line_settings(settings, self.redactor),
                    job_id=None if job is None else int(job),
                )
                self._start_worker(self.run_id)
        except StoreError as exc:
            logger.error(f"SQLite store unavailable: {exc}")
            raise CloseSpider(STORE_ERROR) from exc
        self._stats().set_value(keys.RUN_ID, self.run_id)

    def _start_worker(self, run_id: int) -> None:
        # a restarted worker carries on the figures its killed process last recorded
        self.carried = self.store.start_worker(run_id, self.config.worker)
        self.worker_started = True

    def _worker_counts(self, counts: RunCounts) -> RunCounts:
        pages, items = self.carried
        return replace(counts, pages=counts.pages + pages, items=counts.items + items)

    def _reap(self) -> None:
        """Runs whose processes are gone are marked ``killed`` (one INFO line names them)."""
        try:
            reaped = reap_dead_runs(
                self.store.conn,
                now=datetime.now(UTC),
                stale_seconds=self.config.stale_seconds,
                host=this_host(),
            )
        except (sqlite3.Error, StoreError) as exc:  # not worth failing the crawl over
            logger.warning(f"SQLite store: could not check for killed runs: {exc}")
            return
        if reaped:
            ids = ", ".join(str(run) for run in reaped)
            logger.info(f"Runs whose processes are gone, marked killed: {ids} (see scrapy runs)")

    def _attach(self, run_id: int) -> int:
        """A worker of a run its parent started: items carry the parent's run id."""
        if self.store.run(run_id) is None:
            raise StoreError(f"{self.store.path}: WORKER_RUN_ID {run_id}: no such run")
        self.store.run_id = run_id
        return run_id

    def engine_started(self) -> None:
        """Start the heartbeat: the worker row says every few seconds that this process lives."""
        if self.run_id is None or not self.worker_started:
            return
        self.loop = task.LoopingCall(self.heartbeat)
        if self.clock is not None:
            self.loop.clock = self.clock
        self.loop.start(self.config.heartbeat_seconds, now=False).addErrback(self._loop_failed)

    def heartbeat(self) -> None:
        if self.run_id is None or not self.store.is_open:
            return
        counts = keys.run_counts(self._stats().get_stats())
        try:
            counts = self._worker_counts(counts)
            self.store.heartbeat(self.run_id, self.config.worker, counts.pages, counts.items)
        except StoreError as exc:
            log = logger.debug if self._heartbeat_failed else logger.warning
            log(f"SQLite store: heartbeat of run {self.run_id} not written: {exc}")
            self._heartbeat_failed = True
        else:
            self._heartbeat_failed = False

    def _loop_failed(self, failure: Failure) -> None:
        logger.error("Run heartbeat stopped: %s", failure.getErrorMessage())

    def _stop_heartbeat(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.loop = None

    def item_dropped(self, item: Any, exception: BaseException) -> None:
        if not isinstance(exception, RejectItem) or redis_items_wanted(self.crawler.settings):
            return  # with REDIS_ITEMS the rejects go to the stream, and scrapy ingest stores them
        values = dict(ItemAdapter(item)) if ItemAdapter.is_item(item) else {"value": item}
        self.store.add_reject(type(item).__name__, values, exception.reason)
        if self.store.is_open and self.store.flush_due():
            self.store.flush()

    def spider_closed(self, spider: Spider, reason: str) -> None:
        self._stop_heartbeat()
        try:
            if self.store.is_open:
                self.store.flush()  # rejects, and items the pipeline could not write
                if self.store.replaced is not None and reason != STORE_ERROR:
                    reason = self._store_replaced_at_close()
                if self.run_id is not None:
                    self._finish(reason)
        finally:
            self.store.release()  # last holder: closes the store after the run row is done

    def _store_replaced_at_close(self) -> str:
        """The store file went away too late to stop the crawl: the run failed all the same."""
        stats = self._stats()
        failures = [stats.get_value(keys.HEALTH_FAILURE), f"store: {self.store.replaced}"]
        stats.set_value(keys.HEALTH_STATUS, 1)  # what `scrapy crawl` exits with
        stats.set_value(keys.HEALTH_FAILURE, "; ".join(str(f) for f in failures if f))
        return STORE_ERROR

    def _finish(self, reason: str) -> None:
        assert self.run_id is not None
        stats = self._stats()
        if self.store.pending_items:
            stats.set_value(UNSAVED_ITEMS, self.store.pending_items)
        values = stats.get_stats()
        verdict = keys.recorded_verdict(values, reason)  # what `scrapy crawl` exits with
        counts = keys.run_counts(values)
        redacted = self.redactor.redact_values(values)
        if reason == "finished" and values.get(keys.QUALITY_BREACHES):
            # the crawl finished (its frontier job too) but its data failed a check across runs
            reason = keys.QUALITY_FAILED
        coverage = values.get(keys.COVERAGE) or {}
        checks = values.get(keys.QUALITY_CHECKS)
        try:
            if self.config.attach_run is None:  # the run first: never a finished worker in an
                self.store.finish_run(  # open run, which another process would take as killed
                    self.run_id,
                    reason=reason,
                    counts=counts,
                    exit_status=verdict.exit_status,
                    stats=redacted,
                    failure=self.redactor(verdict.failure) if verdict.failure else None,
                    quality=RunQuality(self.config.worker, coverage, checks),
                )
            if self.worker_started:
                self.store.finish_worker(
                    self.run_id,
                    self.config.worker,
                    reason=reason,
                    counts=self._worker_counts(counts),
                    exit_status=verdict.exit_status,
                    stats=redacted,
                    # a worker of several: its own coverage rows, summed by its parent
                    quality=RunQuality(self.config.worker, coverage)
                    if self.config.attach_run is not None
                    else None,
                )
        except StoreError as exc:
            logger.error(f"SQLite store: run {self.run_id} not finalised: {exc}")

    def _stats(self) -> StatsCollector:
        return self.crawler.stats
