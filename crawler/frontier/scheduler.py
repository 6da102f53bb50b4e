"""``FrontierScheduler``: Scrapy's ``SCHEDULER`` with the frontier in the SQLite store.

Every request a crawl schedules becomes a row of the store's ``frontier`` table (as JSON, see
``crawler.frontier.codec``), unique by fingerprint within the crawl's job, so the table is also
the dupefilter. Requests are leased in batches (``FRONTIER_LEASE_BATCH``), highest priority
first and oldest first within a priority (breadth-first, where Scrapy's default memory queue is
last-in first-out). New requests are written in batches, at least every
``FRONTIER_FLUSH_SECONDS``; memory stays flat however large the frontier.

A request is done once the engine has finished with it: its response went through the callback,
its items through the item pipelines and its new requests into the scheduler. The scheduler
sees that at its next flush, writes the store's pending items first, and only then marks the row
done, in the same transaction as the new requests it led to: a crash at any moment loses
nothing, and a request whose items were not committed is fetched again (items are upserts, so
nothing is stored twice). A callback that raises marks its request failed. Leases are renewed
while the process lives; a lease that is not renewed for ``FRONTIER_LEASE_SECONDS`` (its process
died) is queued again, and a request sent ``FRONTIER_MAX_ATTEMPTS`` times without finishing is
marked failed. Rerunning the same command resumes an unfinished crawl (``crawler.frontier.jobs``).

The frontier needs the store and a run record: with ``FRONTIER = "memory"``, ``SQLITE_ENABLED``
off, ``RUN_RECORD`` off (shell, parse, check) or a ``JOBDIR``, ``from_crawler`` returns Scrapy's
own scheduler instead.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from scrapy import signals
from scrapy.core.scheduler import BaseScheduler, Scheduler
from scrapy.exceptions import CloseSpider
from scrapy.utils.defer import deferred_from_coro
from twisted.internet import task

from crawler import defaults
from crawler import stats as keys
from crawler.durations import parse_duration
from crawler.frontier import codec
from crawler.frontier.backend import (
    LEASED,
    QUEUED,
    BackendError,
    BackendUnusable,
    Batch,
    NewRequest,
)
from crawler.frontier.jobs import AlreadyRunning
from crawler.frontier.sqlitebackend import SQLiteBackend
from crawler.meta import is_seed_request
from crawler.safety.named import LIVE, seed_origin
from crawler.storage import STORE_ERROR, store_for

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

    from crawler.frontier.backend import Backend, RowId

logger = logging.getLogger(__name__)

ALREADY_RUNNING = "already_running"  # finish reason: the same crawl is running elsewhere
FRONTIER_ERROR = "frontier_error"  # finish reason: the frontier table cannot be used
MODES = ("sqlite", "redis", "memory")
WRITE_BATCH = 1000  # new requests buffered before they are written without waiting for the timer
MAX_FAILED_WRITES = 5  # failed frontier writes in a row before the crawl stops
STEAL_AFTER = 2.0  # seconds a worker's part of the queue stays empty before it takes any row
QUEUED_CAP = 10_000  # queued rows counted at most, each tick
IDLE_MAX = 1.0  # seconds: the longest wait between two lease attempts on an empty frontier


def frontier_mode(settings: BaseSettings) -> str:
    mode = str(settings.get("FRONTIER", defaults.FRONTIER) or "").strip().lower()
    if mode not in MODES:
        raise ValueError(f"FRONTIER must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def frontier_wanted(settings: BaseSettings) -> bool:
    """Whether a crawl with these settings uses the store's frontier (module docstring)."""
    return (
        (mode := frontier_mode(settings)) != "memory"
        and settings.getbool("RUN_RECORD", defaults.RUN_RECORD)
        # the Redis frontier stands alone: items may go to Redis rather than to a store
        and (mode == "redis" or settings.getbool("SQLITE_ENABLED", defaults.SQLITE_ENABLED))
        and not settings.get("JOBDIR")
    )


@dataclass(frozen=True)
class FrontierConfig:
    fresh: bool = False
    max_age_seconds: float = 7 * 86400.0
    resume_reasons: frozenset[str] = frozenset(defaults.FRONTIER_RESUME_REASONS)
    lease_seconds: float = 300.0
    lease_batch: int = 32
    max_attempts: int = 3
    flush_seconds: float = 1.0
    stale_seconds: float = 60.0
    run_id: int | None = None  # WORKER_RUN_ID: the run this process is a worker of
    worker: int = 0
    workers: int = 1  # WORKER_COUNT: the processes of the run

    def __post_init__(self) -> None:
        if self.lease_seconds < 5:
            raise ValueError(f"FRONTIER_LEASE_SECONDS must be at least 5, not {self.lease_seconds}")
        if self.lease_batch < 1 or self.max_attempts < 1:
            raise ValueError("FRONTIER_LEASE_BATCH and FRONTIER_MAX_ATTEMPTS must be at least 1")
        if self.flush_seconds <= 0:
            raise ValueError(f"FRONTIER_FLUSH_SECONDS must be > 0, not {self.flush_seconds}")

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> FrontierConfig:
        """Raises ``ValueError`` with a one-line message for a bad setting."""
        max_age = settings.get("FRONTIER_RESUME_MAX_AGE", defaults.FRONTIER_RESUME_MAX_AGE)
        try:
            max_age_seconds = parse_duration(max_age, allow_zero=True).total_seconds()
        except ValueError as exc:
            raise ValueError(f"FRONTIER_RESUME_MAX_AGE: {exc}") from None
        run_id = settings.get("WORKER_RUN_ID")
        return cls(
            fresh=settings.getbool("FRONTIER_FRESH", defaults.FRONTIER_FRESH),
            max_age_seconds=max_age_seconds,
            resume_reasons=frozenset(
                settings.getlist("FRONTIER_RESUME_REASONS", defaults.FRONTIER_RESUME_REASONS)
            ),
            lease_seconds=settings.getfloat(
                "FRONTIER_LEASE_SECONDS", defaults.FRONTIER_LEASE_SECONDS
            ),
            lease_batch=settings.getint("FRONTIER_LEASE_BATCH", defaults.FRONTIER_LEASE_BATCH),
            max_attempts=settings.getint("FRONTIER_MAX_ATTEMPTS", defaults.FRONTIER_MAX_ATTEMPTS),
            flush_seconds=settings.getfloat(
                "FRONTIER_FLUSH_SECONDS", defaults.FRONTIER_FLUSH_SECONDS
            ),
            stale_seconds=settings.getfloat("RUN_STALE_SECONDS", defaults.RUN_STALE_SECONDS),
            run_id=int(run_id) if run_id not in (None, "") else None,
            worker=settings.getint("WORKER_INDEX", 0),
            workers=max(1, settings.getint("WORKER_COUNT", 1)),
        )


class FrontierScheduler(BaseScheduler):
    """The frontier of one crawl process (module docstring), on a ``Backend``."""

    def __init__(self, crawler: Crawler, backend: Backend, config: FrontierConfig) -> None:
        self.crawler = crawler
        self.backend = backend
        self.config = config
        self.stats = crawler.stats
        self.fingerprinter = crawler.request_fingerprinter
        self.spider: Spider | None = None
        self.opened = False
        self.solo = False  # the only process that queues requests on its job (from_crawler)
        self.refused: str | None = None  # why open() could not start the frontier
        self.resumed = False
        self.start_read = False  # this process read start() to its end
        # the request start() yielded last, when start() is read again on a resumed job
        # (FrontierStartMiddleware): its fingerprint may be a row this process is working on
        self._from_start_again: object = None
        self.owner = f"{config.run_id or 0}:{config.worker}:{os.getpid()}"
        self._ready: deque[tuple[RowId, Request]] = deque()  # leased, not handed out yet
        self._held: dict[Request, RowId] = {}  # handed to the engine: row id
        self._held_by_fp: dict[str, Request] = {}
        self._failed: dict[Request, str] = {}  # held requests whose callback raised
        self._new: dict[str, NewRequest] = {}  # to insert
        self._objects: dict[str, Request] = {}  # the Request of each _new row, while unwritten
        # served from memory, not written yet (a process alone on its job takes its own new
        # requests without a round trip; they are written, leased or done, at the next write)
        self._local: dict[str, NewRequest] = {}
        self._again: dict[str, NewRequest] = {}  # to queue again (dont_filter, retries)
        self._bad: list[tuple[RowId, str]] = []  # rows that cannot be read back
        self._started: list[RowId] = []  # handed to the engine since the last write
        self._continued: set[RowId] = set()  # held requests sent again on their own lease
        self._memory: deque[Request] = deque()  # requests JSON cannot hold: crawled from memory
        self._warned: set[str] = set()
        self._idle_until = 0.0
        self._idle_wait = 0.05
        self._work_checked = (0.0, False)
        self._queued = 0  # rows queued in the backend, as last counted (capped)
        self._share_empty_since: float | None = None  # this worker's part of the queue empty
        self._seeds: set[tuple[str, int]] = set()  # origins of the job's seeds named here
        self._new_seeds: list[tuple[str, int]] = []  # to record with the next write
        self._recorded_seeds: set[tuple[str, int]] = set()  # recorded (or to be) by this one
        self._seeds_final = False  # the job is seeded and its seeds were read once after
        self._renewed = time.monotonic()
        self._failed_writes = 0
        self._stopping = False
        self.loop: task.LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FrontierScheduler:
        settings = crawler.settings
        if not frontier_wanted(settings):
            return cast("FrontierScheduler", Scheduler.from_crawler(crawler))
        config = FrontierConfig.from_settings(settings)
        backend: Backend
        if frontier_mode(settings) == "redis":
            from crawler.frontier.redisbackend import RedisBackend  # redis only when used

            backend = RedisBackend.from_crawler(crawler, config)
        else:
            backend = SQLiteBackend(crawler, store_for(crawler), config)
        scheduler = cls(crawler, backend, config)
        # alone on its job (SQLite, no WORKERS): only this process queues requests, so its own
        # count of the queued rows is exact, and an empty queue needs no lease to find out
        scheduler.solo = frontier_mode(settings) == "sqlite" and config.run_id is None
        crawler.signals.connect(scheduler.spider_error, signal=signals.spider_error)
        crawler.signals.connect(scheduler.spider_opened, signal=signals.spider_opened)
        return scheduler

    def spider_opened(self) -> None:
        if self.refused is not None:
            raise CloseSpider(self.refused)

    @property
    def seeded(self) -> bool:
        return self.backend.seeded

    # --- open and close ---------------------------------------------------------------------
    def open(self, spider: Spider) -> None:
        self.spider = spider
        # A CloseSpider raised here would leave Scrapy's scraper unopened (a traceback at
        # close): the reason is kept and raised from spider_opened, which Scrapy honours.
        try:
            choice = self.backend.open(spider)
        except CloseSpider as exc:  # the store cannot open (already logged)
            self.refused = exc.reason or STORE_ERROR
            return
        except AlreadyRunning as exc:
            logger.error(str(exc))
            self.refused = ALREADY_RUNNING
            return
        except BackendUnusable as exc:
            logger.error(f"Frontier cannot be used: {exc}")
            self.refused = FRONTIER_ERROR
            return
        self.opened, self.resumed = True, choice.resumed
        if isinstance(self.backend.job_id, int):  # a store's job row (Redis: a key prefix)
            self.stats.set_value(keys.FRONTIER_JOB_ID, self.backend.job_id)
        if choice.note:
            logger.info(
                f"Frontier: starting afresh, the unfinished crawl is not resumed: {choice.note}"
            )
        if choice.resumed and self.config.run_id is None:
            self.stats.set_value(keys.FRONTIER_RESUMED, 1)
            # the progress total: what the crawl did before and what it has left; it is the
            # whole crawl only for a spider that follows no links (a URL list): then the ETA
            self.stats.set_value(keys.PROGRESS_DONE_BEFORE, choice.done + choice.failed)
            self.stats.set_value(keys.PROGRESS_TOTAL, choice.done + choice.failed + choice.queued)
            if getattr(spider, "follows_links", True) is False:
                self.stats.set_value(keys.PROGRESS_TOTAL_KNOWN, 1)
            logger.info(
                "Frontier: resuming the crawl"
                + (f" of run {choice.previous_run}" if choice.previous_run is not None else "")
                + f" (job {self.backend.job_id}):"
                f" {choice.done} requests done, {choice.queued} to fetch"
                + (f", {choice.failed} failed" if choice.failed else "")
                + ("" if self.seeded else "; start() is read again, seen requests skipped")
            )
        self._read_seeds()
        try:
            self._queued = self.backend.queued(QUEUED_CAP)  # a resumed job has some
        except BackendError as exc:
            self._write_failed(exc)
        self.loop = task.LoopingCall(self.tick)
        self.loop.start(self.config.flush_seconds, now=False).addErrback(self._loop_failed)

    @property
    def skip_start(self) -> bool:
        """start() is not read: another worker seeds the job, or it is seeded already."""
        return self.config.worker > 0 or (self.resumed and self.seeded)

    def start_again(self, item_or_request: object) -> None:
        """``item_or_request`` comes from start() read again on a resumed job, and is scheduled
        next: a request whose fingerprint this process holds is that row's, a duplicate
        (``enqueue_request``), not the held request sent again (a retry, a redirect to itself)."""
        self._from_start_again = item_or_request

    def start_finished(self) -> None:
        """start() was read to its end: the job is seeded once its requests are written."""
        self.start_read = True
        self._from_start_again = None

    def close(self, reason: str) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        try:
            if self.opened:
                self._close_job()
        finally:
            found = self.backend.close(reason, **self._ending(reason))
        for state, number in found.items():
            self.stats.set_value(f"frontier/{state}", number)

    def _close_job(self) -> None:
        self.write(finished=True)
        if self._memory:
            logger.warning(
                f"Frontier: {len(self._memory)} requests JSON cannot hold were not fetched"
            )
        try:
            self.backend.release(self.owner, [row_id for row_id, _ in self._ready])
        except BackendError as exc:
            logger.error(f"Frontier: could not be closed cleanly: {exc}")
        self._ready.clear()

    def _ending(self, reason: str) -> dict[str, bool]:
        """How the job ends with this process: finished, kept for a rerun, or closed."""
        if not self.opened:
            return {"finished": False, "resumable": True}
        try:
            left = self.backend.has_work(self.owner)
        except BackendError:
            left = True
        return {
            "finished": reason == "finished" and not left,
            # a worker never closes the job: the others may still work on it
            "resumable": reason in self.config.resume_reasons or self.config.run_id is not None,
        }

    # --- the scheduler interface ----------------------------------------------------------
    def has_pending_requests(self) -> bool:
        if self._ready or self._memory or self._new or self._again:
            return True
        if not self.opened or self._stopping:
            return False
        now = time.monotonic()
        checked, found = self._work_checked
        if now - checked < 0.25:
            return found
        try:
            found = self.backend.has_work(self.owner)
            if not found and self.config.worker > 0 and not self.seeded:
                found = not self._job_seeded()
        except BackendError as exc:
            self._write_failed(exc)
            found = True
        self._work_checked = (now, found)
        return found

    def __len__(self) -> int:
        """Requests waiting: here, and queued in the backend as last counted (up to
        ``QUEUED_CAP``); the lazy start reads ``start()`` only while this is low."""
        local = len(self._ready) + len(self._memory) + len(self._new) + len(self._again)
        if self.config.workers > 1:
            return local  # the others drain the shared queue: read start() ahead of them
        return local + self._queued

    def enqueue_request(self, request: Request) -> bool:
        if not self.opened:
            return False
        if is_seed_request(request):
            self._note_seed(request.url)
        fingerprint = self.fingerprinter.fingerprint(request).hex()
        held = self._held_by_fp.get(fingerprint)
        if held is not None:  # sent again while this process works on it
            if not request.dont_filter or request is self._from_start_again:
                # (start() read again yields the seed of a row leased here: fetched once)
                return self._duplicate(request)
            row_id = self._held.pop(held)  # its row is not marked done
            del self._held_by_fp[fingerprint]
            self._failed.pop(held, None)
            if request.priority >= held.priority:
                # the same request taken further (rendered, a redirect to itself): next, as
                # Scrapy's last-in first-out queue would, still on its lease, no new attempt
                self._ready.appendleft((row_id, request))
                self._continued.add(row_id)
                self.stats.inc_value("scheduler/enqueued")
                return True
            # a retry (RETRY_PRIORITY_ADJUST lowered it): queued again, behind the others
            return self._queue(request, fingerprint, again=True)
        if fingerprint in self._local and not request.dont_filter:
            return self._duplicate(request)
        if fingerprint in self._new or fingerprint in self._again:
            if not request.dont_filter:
                return self._duplicate(request)
            return self._queue(request, fingerprint, again=fingerprint in self._again)
        try:
            state = self.backend.find(fingerprint)
        except BackendError as exc:
            self._write_failed(exc)
            state = None
        if state is None:
            return self._queue(request, fingerprint, again=False)
        seed_again = self.resumed and request.meta.get("is_start_request")
        if not request.dont_filter or seed_again or state in (QUEUED, LEASED):
            return self._duplicate(request)
        return self._queue(request, fingerprint, again=True)

    def next_request(self) -> Request | None:
        if self._memory:
            return self._memory.popleft()
        if not self._ready:
            self._lease()
        if not self._ready:
            return None
        row_id, request = self._ready.popleft()
        fingerprint = self.fingerprinter.fingerprint(request).hex()
        if row_id in self._continued:
            self._continued.discard(row_id)
        else:
            self._started.append(row_id)  # an attempt, counted at the next write
        self._held[request] = row_id
        self._held_by_fp[fingerprint] = request
        self.stats.inc_value("scheduler/dequeued")
        return request

    # --- enqueueing ---------------------------------------------------------------------------
    def _queue(self, request: Request, fingerprint: str, *, again: bool) -> bool:
        try:
            text, dropped = codec.encode(request, self.spider)
        except codec.Unstorable as exc:
            self._warn_once(
                f"unstorable:{exc}",
                f"Frontier: {request} is crawled from memory, not durably: {exc}",
            )
            self.stats.inc_value("frontier/unstorable")
            self._memory.append(request)
            return True
        for key in dropped:
            self._warn_once(
                f"meta:{key}", f"Frontier: meta[{key!r}] is not kept (JSON cannot hold its value)"
            )
            self.stats.inc_value("frontier/meta_dropped")
        depth = request.meta.get("depth", 0)
        row = NewRequest(
            fingerprint,
            request.url,
            int(request.priority),
            depth if isinstance(depth, int) else 0,
            text,
        )
        (self._again if again else self._new)[fingerprint] = row
        if not again:
            self._objects[fingerprint] = request
        self._idle_until, self._idle_wait = 0.0, 0.05  # work is here: lease without waiting
        self.stats.inc_value("scheduler/enqueued")
        if len(self._new) + len(self._again) >= WRITE_BATCH:
            self.write(finished=False)
        return True

    def _note_seed(self, url: str) -> None:
        """A seed names its origin for every process of the job: recorded with the job (the
        worker that fetches the seed names it as it passes; the others read it back)."""
        origin = seed_origin(url)
        if origin is not None and origin not in self._recorded_seeds:
            self._recorded_seeds.add(origin)
            self._new_seeds.append(origin)

    def _read_seeds(self) -> None:
        """Name the origins the job's seeds named, as their requests did when they passed: a
        resumed crawl or another worker never reads start() (crawler.safety.named)."""
        if self._seeds_final:
            return
        final = self.seeded
        try:
            origins = self.backend.seeds()
        except BackendError as exc:
            self._write_failed(exc)
            return
        targets = LIVE.targets_for(self.crawler)
        for host, port in origins:
            if (host, port) not in self._seeds:
                self._seeds.add((host, port))
                targets.name(host, port)
        self._seeds_final = final

    def _duplicate(self, request: Request) -> bool:
        self.stats.inc_value("dupefilter/filtered")
        if "duplicate" not in self._warned:
            self._warned.add("duplicate")
            logger.debug(
                f"Filtered duplicate request: {request} - no more duplicates will be shown"
            )
        return False

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    # --- leasing ------------------------------------------------------------------------------
    def _lease(self) -> None:
        if not self.opened or self._stopping:
            return
        now = time.monotonic()
        if now < self._idle_until:
            return
        # new requests are written first, in the same transaction: they may come before the
        # queued ones (one transaction per lease, not two)
        before = self._batch([])
        if self.solo and self._queued == 0:
            if self._new:
                self._serve_local()
                return
            if not before:
                self._idle_until = now + self._idle_wait  # nothing queued: no need to ask
                return
        try:
            rows, failed = self.backend.lease(
                self.owner,
                self.config.lease_batch,
                time.time() + self.config.lease_seconds,
                self.config.max_attempts,
                before=before or None,
                share=self._share(now),
            )
        except BackendError as exc:
            self._write_failed(exc)
            self._idle_until = now + IDLE_MAX
            return
        if before:
            self._written(before, [])
        if failed:
            logger.warning(
                f"Frontier: {failed} requests were sent {self.config.max_attempts} times"
                " without finishing (their process kept dying): marked failed"
            )
            self.stats.inc_value("frontier/failed_attempts", failed)
        self._queued = max(0, self._queued - len(rows))
        if rows or self._share_empty_since is None:
            self._share_empty_since = None if rows else now
        if rows and not self._seeds_final and self.config.workers > 1:
            self._read_seeds()  # a seed another worker fetched names its origin here too
        if len(rows) < self.config.lease_batch:
            self._queued = 0  # the queue is empty now
        if not rows:
            self._idle_until = now + self._idle_wait
            self._idle_wait = min(IDLE_MAX, self._idle_wait * 2)
            return
        self._idle_wait = 0.05
        for row in rows:
            try:
                request = codec.decode(row.request or "", self.spider)
            except codec.BadRow as exc:
                job = self.backend.job_id
                logger.warning(f"Frontier: row {row.id} of job {job} skipped: {exc}")
                self.stats.inc_value("frontier/bad_rows")
                self._bad.append((row.id, f"unreadable: {exc}"))
                continue
            self._ready.append((row.id, request))

    def _share(self, now: float) -> tuple[int, int] | None:
        """The part of the queue this worker leases from, ``(index, count)``: each worker of a
        ``WORKERS`` run takes the rows whose id falls to it, so the one that reads ``start()``
        or finds the links does not take every new request before the others can ask; a worker
        whose part stayed empty for ``STEAL_AFTER`` seconds takes any row (the end of the crawl,
        a dead worker). None: any row."""
        count = self.config.workers
        if count <= 1 or self.config.run_id is None:
            return None
        since = self._share_empty_since
        if since is not None and now - since >= STEAL_AFTER:
            return None
        return self.config.worker % count, count

    def _serve_local(self) -> None:
        """Hand out this process's own new requests without a round trip (the queue in the
        store is empty and no other process adds to it), highest priority first. Crash-safe:
        they are written at the next write, with the done marks of the requests they came
        from and before the job is marked seeded, so a crash before that write re-creates them
        (their parents are fetched again; start() is read again)."""
        order = sorted(self._new.values(), key=lambda row: -row.priority)
        for row in order[: self.config.lease_batch]:
            del self._new[row.fingerprint]
            self._local[row.fingerprint] = row
            self._ready.append((row.fingerprint, self._objects.pop(row.fingerprint)))

    # --- writing ------------------------------------------------------------------------------
    def _finished(self) -> list[Request]:
        """Held requests the engine is done with (it keeps the ones in progress)."""
        engine = self.crawler.engine
        slot = getattr(engine, "_slot", None)
        in_progress = getattr(slot, "inprogress", None)
        if in_progress is None:
            return list(self._held)
        return [request for request in self._held if request not in in_progress]

    def _batch(self, done_requests: list[Request]) -> Batch:
        """What the next write holds: everything pending, and these requests finished."""
        batch = Batch(
            new=list(self._new.values()),
            again=list(self._again.values()),
            failed=list(self._bad),
            seeded=self.start_read and not self.seeded and self.config.worker == 0,
            seeds=list(self._new_seeds),
            started=list(self._started),
        )
        for request in done_requests:
            row_id = self._held[request]
            if request in self._failed:
                batch.failed.append((row_id, self._failed[request]))
            else:
                batch.done.append(row_id)
        if self._local:  # served from memory: written leased (then finished, if they are)
            batch.leased_new = list(self._local.values())
            batch.owner = self.owner
            batch.deadline = time.time() + self.config.lease_seconds
        return batch

    def _written(self, batch: Batch, done_requests: list[Request]) -> None:
        """``batch`` is committed: forget what it held."""
        self._failed_writes = 0
        self._queued += len(batch.new) + len(batch.again)
        self._new_seeds.clear()
        self._started.clear()
        for fingerprint in self._new:
            self._objects.pop(fingerprint, None)
        self._new.clear()
        for row in batch.leased_new:
            self._local.pop(row.fingerprint, None)
        self._again.clear()
        self._bad.clear()
        for request in done_requests:
            self._forget(request)
        if batch.done:
            self.stats.inc_value("frontier/done", len(batch.done))
        if batch.failed:
            self.stats.inc_value("frontier/failed", len(batch.failed))

    def write(self, *, finished: bool) -> bool:
        """Write new requests, and with ``finished`` mark the finished ones done (module
        docstring: after the items they produced). False when the write failed."""
        if not self.opened:
            return False
        done_requests = self._finished() if finished else []
        if done_requests and not self.backend.flush_items():
            done_requests = []  # marked done only once their items are committed
        batch = self._batch(done_requests)
        if not batch:
            return True
        try:
            self.backend.commit(batch)
        except BackendError as exc:
            self._write_failed(exc)
            return False
        self._written(batch, done_requests)
        return True

    def _forget(self, request: Request) -> None:
        self._held.pop(request, None)
        self._failed.pop(request, None)
        fingerprint = self.fingerprinter.fingerprint(request).hex()
        if self._held_by_fp.get(fingerprint) is request:
            del self._held_by_fp[fingerprint]

    def tick(self) -> None:
        """The timer: write, renew this process's leases, take over expired ones."""
        if not self.opened:
            return
        self.write(finished=True)
        try:
            self._queued = self.backend.queued(QUEUED_CAP)
        except BackendError as exc:
            self._write_failed(exc)
        if not self._ready:
            self._wake()  # other workers may have queued requests: try to lease some
        now = time.monotonic()
        if now - self._renewed < self.config.lease_seconds / 3:
            return
        self._renewed = now
        try:
            self.backend.renew(self.owner, time.time() + self.config.lease_seconds)
            taken = self.backend.reclaim_expired(time.time())
        except BackendError as exc:
            self._write_failed(exc)
            return
        if taken:
            logger.info(f"Frontier: {taken} expired leases (their process is gone) queued again")
            self.stats.inc_value("frontier/reclaimed", taken)
            self._idle_until = 0.0
            self._wake()

    def _wake(self) -> None:
        slot = getattr(self.crawler.engine, "_slot", None)
        nextcall = getattr(slot, "nextcall", None)
        if nextcall is not None:
            nextcall.schedule()

    def _job_seeded(self) -> bool:
        seeded = self.backend.job_seeded()
        if seeded:
            self._wake()
        return seeded

    def spider_error(self, failure: Failure, response: Any) -> None:
        """A callback raised: its request is marked failed, not done."""
        request = getattr(response, "request", None)
        if request is None:
            return
        if request not in self._held:
            request = self._held_by_fp.get(self.fingerprinter.fingerprint(request).hex())
        if request is not None:
            message = f"{type(failure.value).__name__}: {failure.getErrorMessage()}"
            self._failed[request] = message[:500]

    def _write_failed(self, exc: BaseException) -> None:
        self._failed_writes += 1
        self.stats.inc_value("frontier/write_errors")
        if self._failed_writes == 1:
            logger.error(f"Frontier: cannot write: {exc}")
        if self._failed_writes >= MAX_FAILED_WRITES and not self._stopping:
            self._stopping = True
            logger.error(
                f"Frontier: {self._failed_writes} writes failed in a row, stopping the crawl: {exc}"
            )
            engine = self.crawler.engine
            if engine is not None and engine.spider is not None:
                deferred_from_coro(engine.close_spider_async(reason=STORE_ERROR))

    def _loop_failed(self, failure: Failure) -> None:
        logger.error(f"Frontier timer stopped: {failure.getErrorMessage()}")
