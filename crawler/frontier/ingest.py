"""``Ingester``: the items of a Redis crawl's workers into one SQLite store (``scrapy ingest``).

Workers with ``REDIS_ITEMS`` append their items to the job's ``…:items`` stream
(``crawler.pipelines.redis_items``). One ingesting process reads it through the consumer group
``ingest`` (``XGROUP CREATE … MKSTREAM``; ``XREADGROUP COUNT 500 BLOCK``), writes each batch into
the store in one transaction through the ``Store`` API (upserts on the natural key: an item
delivered twice is one row) and into this run's CSV files, and acknowledges the entries
(``XACK``) only after the commit; entries acknowledged are then trimmed from the stream
(``XTRIM MINID``): it holds the items on their way, not the crawl's history. A killed ingester
leaves its entries pending: the next one takes them over (``XAUTOCLAIM``) before reading new
ones. Only one ingester per job at a time: it records itself in the job's meta (``ingester``:
host, pid, heartbeat), and a second one is refused while the first is alive.

The run: one ``runs`` row for the distributed crawl, with the ingester as worker 0 and each
Redis worker of ``…:workers`` as worker 1, 2, … (host, pid, heartbeat, pages, items), refreshed
every ``RUN_HEARTBEAT_SECONDS``. The ingester ends when the job's state is ``finished`` and the
stream is drained (finish reason ``finished``, exit 0), or when asked to stop (Ctrl-C: the batch
in hand is committed and acknowledged first; finish reason ``shutdown``; running it again goes on
where it stopped). An entry that is not ours is logged with its id, counted and acknowledged.
Redis lost (a restart): the ingester waits with back-off and jitter, up to ``retry_seconds``
(``REDIS_RETRY_SECONDS``), then stops with ``redis_error``; what it read and had not acknowledged
is stored (or taken over by the next run), never lost.

What a crawl records of its data, the ingester records of the distributed crawl's: the field
coverage of the items it stores, per table (``crawler.quality.coverage``, as ``FieldCoverage``
counts them; ``field_coverage`` rows as worker 0), a ``run_samples`` row every
``SAMPLE_INTERVAL`` and one at the end (items and rejects stored so far, pages from the
workers' heartbeats), and at the end the checks across runs (``crawler.quality.checks``) against
the previous successful runs of the same spider and arguments: items, coverage and rejects, and
the error ratio and status mix from the response figures of the workers' last heartbeats
(``heartbeat_figures`` of ``crawler.frontier.redisbackend``, summed). An ingester run again on a
crawl another one ingested part of (the job's meta counts them, ``ingest_runs``) has only the
rest: its items and coverage are not compared. A breach is one ERROR line ``run failed:
quality: …``, the run's failure, finish reason ``quality_failed`` and exit status 1, as a crawl's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import redis

from crawler import defaults
from crawler import stats as keys
from crawler.frontier.itemstream import BadEntry, StreamItem, read_entry
from crawler.frontier.redisbackend import is_figure
from crawler.frontier.redisconn import CONNECTION_ERRORS
from crawler.itemtables import Placement
from crawler.quality.baseline import previous_figures
from crawler.quality.checks import CheckResult, QualityPolicy, RunFigures, breaches, run_checks
from crawler.quality.coverage import CoverageCounter
from crawler.stats import RunCounts
from crawler.storage import StoreError
from crawler.storage.liveness import pid_alive, this_host
from crawler.storage.quality import RunQuality
from crawler.storage.samples import Sample, add_sample

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from crawler.frontier.redisconn import RedisKeys
    from crawler.frontier.runcsv import RunCsv
    from crawler.storage import Store

logger = logging.getLogger(__name__)

GROUP = "ingest"
COUNT = 500  # entries per read, and per store transaction
FINISHED = "finished"
SHUTDOWN = "shutdown"
STORE_FAILED = "store_error"
REDIS_LOST = "redis_error"


class IngestError(Exception):
    """The ingester cannot start or go on; the message is one line."""


@dataclass(frozen=True)
class IngestConfig:
    block_ms: int = 1000
    heartbeat_seconds: float = 10.0
    stale_seconds: float = 60.0
    max_failed_writes: int = 5
    retry_seconds: float = 120.0  # REDIS_RETRY_SECONDS: how long a lost Redis is waited for
    coverage_max_fields: int | None = defaults.COVERAGE_MAX_FIELDS  # None: COVERAGE_ENABLED off
    sample_interval: float | None = defaults.SAMPLE_INTERVAL  # None: SAMPLE_ENABLED off
    quality: QualityPolicy | None = None  # the checks across runs; None: HEALTH_ENABLED off


@dataclass
class IngestCounts:
    items: int = 0
    rejects: int = 0
    unplaced: int = 0
    bad: int = 0
    claimed: int = 0
    batches: int = 0

    def as_stats(self) -> dict[str, int]:
        return {f"ingest/{name}": value for name, value in self.__dict__.items()}


@dataclass
class IngestResult:
    run_id: int
    reason: str
    counts: IngestCounts
    csv_paths: list[str] = field(default_factory=list)


def count_item(counter: CoverageCounter, item: StreamItem) -> None:
    """Count a streamed item's fields as ``FieldCoverage`` counts the item in a crawl: a class's
    declared fields all (unset ones as empty), a schema-less item's keys as they come."""
    values, declared = item.values, item.placement.fields
    if declared is None:
        counter.add(item.placement.table, values.items())
    else:
        counter.add(item.placement.table, ((f.name, values.get(f.name)) for f in declared))


def _iso(unix: Any) -> str | None:
    try:
        return datetime.fromtimestamp(float(unix), UTC).isoformat(timespec="milliseconds")
    except (TypeError, ValueError, OverflowError):
        return None


class Ingester:
    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        store: Store,
        csv: RunCsv | None = None,
        config: IngestConfig | None = None,
        *,
        spider: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.store = store
        self.csv = csv
        self.config = config or IngestConfig()
        self.host, self.pid = this_host(), os.getpid()
        self.consumer = f"{self.host}:{self.pid}"
        self.counts = IngestCounts()
        self.run_id: int | None = None
        self._workers: dict[str, int] = {}  # Redis worker -> its worker number in the run
        self._pages: dict[str, int] = {}
        self._figures: dict[str, dict[str, int]] = {}  # each worker's response figures
        self._beat_at = 0.0
        self._failed_writes = 0
        self._held_ids: list[str] = []  # read, not acknowledged yet
        self._held_items: list[StreamItem] = []
        self._to_ack: list[str] = []  # stored, not acknowledged yet
        self._taken_over = False
        # what the run is compared with: the spider and arguments its run row records
        self.spider, self.arguments = spider, dict(arguments or {})
        limit = self.config.coverage_max_fields
        self.coverage = CoverageCounter(limit) if limit is not None else None
        self._whole = True  # the first ingester of the crawl: it stores all of its items
        self._started = time.monotonic()
        self._sampled_at = 0.0
        self._sample_failed = False

    # --- the one ingester of a job ------------------------------------------------------------
    def claim_job(self) -> None:
        """Record this process as the job's ingester; ``IngestError`` if a live one is there."""
        found = self.client.hget(self.keys.meta, "ingester")
        if found:
            try:
                other = json.loads(found)
                alive = (
                    pid_alive(int(other["pid"]))
                    if other.get("host") == self.host
                    else time.time() - float(other["heartbeat"]) < self.config.stale_seconds
                )
            except (ValueError, TypeError, KeyError):
                alive = False
            if alive and other.get("pid") != self.pid:
                raise IngestError(
                    f"another scrapy ingest (pid {other.get('pid')} on {other.get('host')})"
                    f" is ingesting {self.keys.base}: one ingester per crawl"
                )
        self._announce()
        # an ingester run again on the crawl has only the rest of its items (module docstring)
        self._whole = int(self.client.hincrby(self.keys.meta, "ingest_runs", 1)) == 1
        try:
            self.client.xgroup_create(self.keys.items, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _announce(self) -> None:
        entry = {"host": self.host, "pid": self.pid, "heartbeat": time.time()}
        self.client.hset(self.keys.meta, "ingester", json.dumps(entry))

    def release_job(self) -> None:
        found = self.client.hget(self.keys.meta, "ingester")
        if found and json.loads(found).get("pid") == self.pid:
            self.client.hdel(self.keys.meta, "ingester")

    # --- the run -------------------------------------------------------------------------------
    def run(self, start_run: Callable[[], int], stopping: Callable[[], bool]) -> IngestResult:
        """Ingest until the job is finished and the stream drained, or ``stopping()``."""
        self.claim_job()
        try:
            self.run_id = start_run()
            self.store.start_worker(self.run_id, 0)
            self._started = self._sampled_at = time.monotonic()
            reason = self._loop(stopping)
        finally:
            with contextlib.suppress(redis.RedisError, *CONNECTION_ERRORS):
                self.release_job()
        return self._finish(reason)

    def _loop(self, stopping: Callable[[], bool]) -> str:
        lost_since: float | None = None
        wait = 0.5
        while True:
            if self._failed_writes >= self.config.max_failed_writes:
                return STORE_FAILED
            if stopping():
                with contextlib.suppress(*CONNECTION_ERRORS):
                    self.commit()  # what is not acknowledged is taken over by the next run
                return SHUTDOWN
            try:
                if self._step():
                    return FINISHED
            except CONNECTION_ERRORS as exc:
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                    logger.warning(f"Ingest: Redis lost ({exc}); retrying with back-off")
                if now - lost_since > self.config.retry_seconds:
                    logger.error(f"Ingest: Redis unreachable for {now - lost_since:.0f} s: {exc}")
                    return REDIS_LOST
                time.sleep(wait * random.uniform(0.5, 1.0))
                wait = min(5.0, wait * 2)
                continue
            if lost_since is not None:
                logger.info("Ingest: Redis is back")
            lost_since, wait = None, 0.5

    def _step(self) -> bool:
        """One read and what follows; True when the job is finished and everything is stored."""
        if not self._taken_over:
            self._take_over_pending()
            self._taken_over = True
        entries = self._read(self.config.block_ms)
        if entries:
            self._ingest(entries)
            return False
        self._beat()
        if self.client.hget(self.keys.meta, "state") != FINISHED:
            return False
        # every XADD of a worker happened before the job was finished: one more read tells
        entries = self._read(None)
        if entries:
            self._ingest(entries)
            return False
        return self.commit()

    def _read(self, block: int | None) -> list[tuple[str, dict[str, str]]]:
        found: Any = self.client.xreadgroup(
            GROUP, self.consumer, {self.keys.items: ">"}, count=COUNT, block=block
        )
        return list(found[0][1]) if found else []

    def _take_over_pending(self) -> None:
        """Entries read by an ingester that died before acknowledging them."""
        start = "0-0"
        while True:
            answer = self.client.xautoclaim(
                self.keys.items, GROUP, self.consumer, min_idle_time=0, start_id=start,
                count=COUNT,
            )  # fmt: skip
            start, entries = answer[0], [e for e in answer[1] if e and e[1] is not None]
            if entries:
                self.counts.claimed += len(entries)
                logger.info(f"Ingest: taking over {len(entries)} entries a stopped ingester read")
                self._ingest(entries)
            if start == "0-0":
                return

    def _ingest(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """One batch into the store's buffer, then ``commit``."""
        for entry_id, fields in entries:
            self._held_ids.append(entry_id)
            try:
                entry = read_entry(fields)
            except BadEntry as exc:
                self.counts.bad += 1
                logger.warning(f"Ingest: entry {entry_id} of {self.keys.items} skipped: {exc}")
                continue
            if isinstance(entry, StreamItem):
                self._add_item(entry)
                self._held_items.append(entry)
            elif entry.kind == "reject":
                item = entry.item if isinstance(entry.item, dict) else {"value": entry.item}
                self.store.add_reject(entry.type_name, item, entry.reason)
                self.counts.rejects += 1
            else:
                self.store.add_unplaced(entry.spider, entry.type_name, entry.item, entry.reason)
                self.counts.unplaced += 1
        self.commit()

    def commit(self) -> bool:
        """Write what is held in one transaction; only then the CSV rows and ``XACK``. A failed
        write keeps it all (the store keeps its buffer) for the next commit."""
        if self._held_ids:
            if not self.store.flush():
                self._failed_writes += 1
                time.sleep(min(5.0, 0.2 * 2**self._failed_writes))
                return False
            self._failed_writes = 0
            self.counts.batches += 1
            self.counts.items += len(self._held_items)
            if self.coverage is not None:
                for item in self._held_items:
                    count_item(self.coverage, item)
            if self.csv is not None:
                for item in self._held_items:
                    self.csv.write(item.placement, item.values, item.row_key)
            self._to_ack += self._held_ids
            self._held_ids, self._held_items = [], []
        if self._to_ack:  # stored: a lost XACK only means a second, harmless delivery
            self.client.xack(self.keys.items, GROUP, *self._to_ack)
            self._trim(self._to_ack[-1])
            self._to_ack = []
        self._beat()
        return True

    def _trim(self, acknowledged: str) -> None:
        """Drop the entries stored and acknowledged (all below the oldest still pending, or up
        to the last one acknowledged): the stream holds what is on its way, not the crawl's
        history, so Redis memory does not grow with the items of a long crawl."""
        summary: Any = self.client.xpending(self.keys.items, GROUP)
        if summary and summary.get("pending"):
            keep = str(summary["min"])  # the oldest entry read and not stored yet stays
        else:
            ms, _, seq = acknowledged.partition("-")
            keep = f"{ms}-{int(seq or 0) + 1}"  # everything up to the last one stored goes
        self.client.xtrim(self.keys.items, minid=keep, approximate=False)

    def _add_item(self, item: StreamItem) -> None:
        try:
            self.store.add_placed(item.type_name, item.values, item.placement, item.row_key,
                                  item.at)  # fmt: skip
        except TypeError:  # as SQLitePipeline: a declared class the store cannot take as such
            inferred = Placement(item.placement.table, item.placement.key, None)
            self.store.add_placed(item.type_name, item.values, inferred, item.row_key, item.at)

    # --- the workers' figures -----------------------------------------------------------------
    def _beat(self, *, force: bool = False) -> None:
        now = time.monotonic()
        interval = self.config.sample_interval
        if interval is not None and now - self._sampled_at >= interval:
            self._sampled_at = now
            self.sample()
        due = force or now - self._beat_at >= self.config.heartbeat_seconds
        if self.run_id is None or not due:
            return
        self._beat_at = now
        self._announce()
        self.sync_workers()
        self.store.heartbeat(self.run_id, 0, 0, self.counts.items)

    def sync_workers(self) -> None:
        """The Redis workers of the job as this run's worker rows 1, 2, …"""
        assert self.run_id is not None
        entries: Mapping[str, str] = cast("Any", self.client.hgetall(self.keys.workers))
        for owner in sorted(entries, key=lambda o: _started(entries[o])):
            try:
                data = json.loads(entries[owner])
            except ValueError:
                continue
            number = self._workers.setdefault(owner, len(self._workers) + 1)
            self._pages[owner] = int(data.get("pages") or 0)
            figures = data.get("figures")
            if isinstance(figures, dict):
                self._figures[owner] = {
                    str(k): v for k, v in figures.items() if is_figure(str(k)) and type(v) is int
                }
            finished = data.get("finished")
            self.store.record_worker(self.run_id, number, {
                "host": str(data.get("host") or "?"), "pid": int(data.get("pid") or 0),
                "started_at": _iso(data.get("started")) or _iso(data.get("heartbeat")),
                "heartbeat_at": _iso(data.get("heartbeat")),
                "pages": self._pages[owner], "items": int(data.get("items") or 0),
                "finished_at": _iso(data.get("heartbeat")) if finished else None,
                "finish_reason": str(finished) if finished else None,
            })  # fmt: skip

    def sample(self) -> None:
        """A ``run_samples`` row (worker 0) with the figures so far; a store error is logged
        once (WARNING) and never stops the ingester."""
        if self.run_id is None or self.config.sample_interval is None:
            return
        figures = Sample(
            elapsed=round(time.monotonic() - self._started, 3), pages=sum(self._pages.values()),
            items=self.counts.items, errors=self.counts.bad, rejects=self.counts.rejects,
        )  # fmt: skip
        try:
            add_sample(self.store.conn, self.run_id, 0, self.store.now(), figures)
        except (StoreError, sqlite3.Error) as exc:
            log = logger.debug if self._sample_failed else logger.warning
            log(f"SQLite store: run_samples of run {self.run_id} not written: {exc}")
            self._sample_failed = True

    def _checks(self, reason: str, stats: Mapping[str, Any]) -> list[CheckResult]:
        """The checks across runs, as ``HealthMonitor`` makes them for a crawl (module doc)."""
        policy = self.config.quality
        if policy is None:
            return []
        try:
            previous = previous_figures(
                self.store, self.spider, self.arguments, self.run_id, policy
            )
        except (sqlite3.Error, StoreError, ValueError) as exc:
            logger.warning(f"previous runs not read, this run not compared with them: {exc}")
            return []
        current = RunFigures.from_stats(stats, None, policy.item_stats)
        whole = self._whole and reason == FINISHED
        return run_checks(current, previous, policy, whole_run=whole)

    def _finish(self, reason: str) -> IngestResult:
        assert self.run_id is not None
        paths: list[str] = []
        if self.csv is not None:
            paths = [str(p) for p in self.csv.publish(self.run_id)]
        try:
            self.sync_workers()
        except redis.RedisError as exc:
            logger.warning(f"Ingest: the workers' figures could not be read: {exc}")
        counts = RunCounts(
            pages=sum(self._pages.values()), items=self.counts.items,
            rejects=self.counts.rejects, duplicates=0, errors=self.counts.bad,
        )  # fmt: skip
        status = 0 if reason == FINISHED else 1
        stats: dict[str, Any] = {
            **self.counts.as_stats(), "ingest/stream": self.keys.items,
            # what the checks across runs read of a run (this one, and the next ones')
            "item_scraped_count": self.counts.items, keys.REJECTED: self.counts.rejects,
        }  # fmt: skip
        for figures in self._figures.values():  # the workers' responses: errors, statuses
            for key, value in figures.items():
                stats[key] = stats.get(key, 0) + value
        if not self._whole:
            stats[keys.FRONTIER_RESUMED] = 1  # it goes on from another ingester's run
        coverage = self.coverage.coverage() if self.coverage is not None else None
        if coverage:
            stats[keys.COVERAGE] = coverage
        if paths:
            stats["csv/paths"] = paths
        failures = [] if status == 0 else [f"ingest stopped: {reason}"]
        results = self._checks(reason, stats)
        for line in breaches(results):
            logger.error(f"run failed: {line}")
            failures.append(line)
        checks: list[Any] | None = None  # None: no checks (HEALTH_ENABLED off), as a crawl
        if self.config.quality is not None:
            checks = [result.as_dict() for result in results]
            stats[keys.QUALITY_CHECKS] = checks
            stats[keys.QUALITY_BREACHES] = sum(not result.passed for result in results)
        if breaches(results):
            status = 1
            if reason == FINISHED:
                reason = keys.QUALITY_FAILED  # every item stored, and they failed a check
        failure = "; ".join(failures) or None
        stats[keys.HEALTH_STATUS] = status
        if failure:
            stats[keys.HEALTH_FAILURE] = failure
        self.sample()  # the final one
        self.store.finish_run(self.run_id, reason=reason, counts=counts, exit_status=status,
                              stats=stats, failure=failure,
                              quality=RunQuality(0, coverage, checks))  # fmt: skip
        own = replace(counts, pages=0)  # worker 0 is this process: it fetches nothing
        self.store.finish_worker(self.run_id, 0, reason=reason, counts=own,
                                 exit_status=status, stats=stats)  # fmt: skip
        return IngestResult(self.run_id, reason, self.counts, paths)


def _started(entry: str) -> float:
    try:
        return float(json.loads(entry).get("started") or 0)
    except (ValueError, TypeError, AttributeError):
        return 0.0
