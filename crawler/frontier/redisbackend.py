"""``RedisBackend``: the frontier of one crawl in Redis, shared by workers on many machines
(``FRONTIER = "redis"``).

Every process started with the same spider, arguments and ``REDIS_URL`` is a worker of one job:
its keys are ``<REDIS_KEY_PREFIX>:<spider>:<jobkey>:…`` (``crawler.frontier.redisconn.RedisKeys``).
Requests are leased, never popped: a Lua script (``crawler.frontier.redisscripts``) moves them from
the queue to the in-flight set with a deadline in one step, a commit marks them done after their
items are stored, and a lease whose process stops renewing it goes back to the queue (any worker
reclaims it). A worker never deletes the job's keys while the job has work: one finishing or
stopping worker leaves the queue and the dupefilter to the others.

The end of a crawl: a worker ends when ``has_work`` is false for it (nothing queued, nothing leased
by another worker, which could still add requests) and the job is seeded (the first worker, the one
with ``WORKER_INDEX`` 0, read ``start()`` to its end; the others skip ``start()`` and wait for it).
The last one marks the job finished, and only when nothing is queued or leased. Running the same
command again resumes an unfinished job (joins it while other workers run on it); on a finished
job the first worker starts a new crawl. ``FRONTIER_FRESH`` on a job with live workers is refused
(``AlreadyRunning``): starting afresh would pull the frontier from under them.

Each worker records itself in ``P:workers`` (host, pid, heartbeat, pages, items, and the
``figures`` of its responses that ``scrapy ingest`` checks across runs: ``heartbeat_figures``)
every ``RUN_HEARTBEAT_SECONDS``; a worker that opens the job takes back at once the leases of
workers that are gone (finished, silent for ``RUN_STALE_SECONDS``, or a dead pid on this host).

Redis lost mid-crawl (a restart): each call is retried with exponential back-off and jitter for up
to ``REDIS_RETRY_SECONDS``, then fails (the scheduler stops the crawl after a few failures in a
row). The crawl pauses meanwhile: nothing can be leased or committed. An idle worker polls with
back-off and jitter up to ``REDIS_IDLE_MAX_SECONDS``. A queue entry that cannot be used (no request
data, a request that does not decode) is logged with its key, counted (``frontier/bad_rows``) and
marked failed; a key of the wrong type makes the frontier unusable (one line naming the key).

Items: ``flush_items`` calls ``frontier_flush()`` (returns bool) of every item pipeline that has
one (the Redis items pipeline), and flushes the SQLite store when it is on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis
from scrapy.exceptions import NotConfigured

from crawler import defaults
from crawler import stats as keys
from crawler.frontier import redisscripts
from crawler.frontier.backend import BackendError, BackendUnusable, LeasedRow
from crawler.frontier.jobs import AlreadyRunning, JobChoice, job_arguments
from crawler.frontier.redisconn import (
    CONNECTION_ERRORS,
    RedisKeys,
    RedisUnavailable,
    check,
    describe,
    redis_url,
    shown_url,
)
from crawler.storage import store_for
from crawler.storage.liveness import pid_alive, this_host

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

    from crawler.frontier.backend import Batch
    from crawler.frontier.backend import RowId as RowId
    from crawler.frontier.scheduler import FrontierConfig
    from crawler.storage import Store

logger = logging.getLogger(__name__)

OPEN, FINISHED = "open", "finished"
IDLE_FIRST = 0.05  # seconds: the first wait of an idle worker, doubled up to REDIS_IDLE_MAX_SECONDS
RETRY_FIRST, RETRY_MAX = 0.2, 5.0  # seconds: back-off between two tries on a lost connection
KEY_TYPES = {  # what each frontier key must be (or absent)
    "meta": "hash", "queue": "zset", "requests": "hash", "seen": "hash", "inflight": "zset",
    "owners": "hash", "attempts": "hash", "errors": "hash", "seeds": "set", "workers": "hash",
}  # fmt: skip
BAD_ROWS = "frontier/bad_rows"
RETRIES = "frontier/redis_retries"


@dataclass(frozen=True)
class RedisConfig:
    url: str = defaults.REDIS_URL
    idle_max_seconds: float = defaults.REDIS_IDLE_MAX_SECONDS
    retry_seconds: float = defaults.REDIS_RETRY_SECONDS
    heartbeat_seconds: float = defaults.RUN_HEARTBEAT_SECONDS

    def __post_init__(self) -> None:
        if self.idle_max_seconds < IDLE_FIRST:
            raise ValueError(f"REDIS_IDLE_MAX_SECONDS must be at least {IDLE_FIRST}")
        if self.retry_seconds < 0:
            raise ValueError(f"REDIS_RETRY_SECONDS must be >= 0, not {self.retry_seconds}")

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RedisConfig:
        return cls(
            url=redis_url(settings),
            idle_max_seconds=settings.getfloat(
                "REDIS_IDLE_MAX_SECONDS", defaults.REDIS_IDLE_MAX_SECONDS
            ),
            retry_seconds=settings.getfloat("REDIS_RETRY_SECONDS", defaults.REDIS_RETRY_SECONDS),
            heartbeat_seconds=settings.getfloat(
                "RUN_HEARTBEAT_SECONDS", defaults.RUN_HEARTBEAT_SECONDS
            ),
        )


def _jitter(seconds: float) -> float:
    return seconds * random.uniform(0.5, 1.0)


class RedisBackend:
    def __init__(
        self,
        crawler: Crawler,
        config: FrontierConfig,
        redis_config: RedisConfig,
        store: Store | None = None,
    ) -> None:
        self.crawler = crawler
        self.config = config
        self.redis_config = redis_config
        self.store = store
        self.client: redis.Redis | None = None
        self.keys: RedisKeys | None = None
        self.job_id: str | None = None
        self.seeded = False
        self.host = this_host()
        self.pid = os.getpid()
        self.me = f"{self.host}:{config.run_id or 0}:{config.worker}:{self.pid}"
        self._held = False
        self._opened = False
        self._gave_up = False
        self._idle_until = 0.0
        self._idle_wait = IDLE_FIRST
        self._busy_until = 0.0  # has_work said yes: asked again before this, the same answer
        self._beat_at = 0.0
        self._started = time.time()
        self._scripts: dict[str, Any] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler, config: FrontierConfig) -> RedisBackend:
        """With ``SQLITE_ENABLED`` the store's items are flushed before requests are done."""
        try:
            store: Store | None = store_for(crawler)
        except NotConfigured:
            store = None
        return cls(crawler, config, RedisConfig.from_settings(crawler.settings), store)

    # --- calls ------------------------------------------------------------------------------
    def _owner(self, owner: str) -> str:
        """The scheduler's owner is unique on its host: the host makes it unique for the job."""
        return f"{self.host}:{owner}"

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn`` with retries on a lost connection (module docstring); ``BackendError``."""
        first: float | None = None
        wait = RETRY_FIRST
        while True:
            try:
                result = fn(*args, **kwargs)
            except CONNECTION_ERRORS as exc:
                message = describe(exc, self.redis_config.url)
                now = time.monotonic()
                budget = self.redis_config.retry_seconds
                if first is None:
                    first = now
                    if not self._gave_up:
                        logger.warning(f"Frontier: {message}; retrying for up to {budget:g} s")
                if self._gave_up or now - first >= budget:
                    self._gave_up = True
                    raise BackendError(message) from None
                self._stat(RETRIES)
                time.sleep(min(_jitter(wait), max(0.0, first + budget - now)))
                wait = min(RETRY_MAX, wait * 2)
                continue
            except redis.RedisError as exc:
                raise BackendError(self._wrong_type() or f"{self._at()}: {exc}") from None
            if first is not None:
                logger.info(f"Frontier: Redis answers again after {time.monotonic() - first:.1f} s")
                self._renew_mine()
            self._gave_up = False
            self._beat()
            return result

    def _registered(self, name: str) -> Any:
        assert self.client is not None
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(getattr(redisscripts, name))
        return script

    def _script(self, name: str, args: list[Any]) -> Any:
        assert self.keys is not None
        return self._call(self._registered(name), keys=self.keys.frontier_keys(), args=args)

    def _renew_mine(self) -> None:
        """After an outage: this worker's leases get a new deadline at once, before another
        worker takes them for a dead process's (its own renewal may be a while off)."""
        assert self.keys is not None
        deadline = time.time() + self.config.lease_seconds
        try:
            self._registered("RENEW")(keys=self.keys.frontier_keys(), args=[self.me, deadline])
        except (*CONNECTION_ERRORS, redis.RedisError) as exc:
            logger.debug(f"Frontier: leases not renewed after the outage: {exc}")

    def _stat(self, key: str, count: int = 1) -> None:
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value(key, count)

    def _idle(self) -> bool:
        return time.monotonic() < self._idle_until

    def _wait_more(self) -> None:
        self._idle_until = time.monotonic() + _jitter(self._idle_wait)
        self._idle_wait = min(self.redis_config.idle_max_seconds, self._idle_wait * 2)

    def _work_here(self) -> None:
        self._idle_until, self._idle_wait = 0.0, IDLE_FIRST

    # --- liveness ---------------------------------------------------------------------------
    def _beat(self, finished: str | None = None, *, force: bool = False) -> None:
        """This worker's entry in ``P:workers`` (every ``RUN_HEARTBEAT_SECONDS``)."""
        now = time.monotonic()
        if self.client is None or self.keys is None:
            return
        if not force and now - self._beat_at < self.redis_config.heartbeat_seconds:
            return
        self._beat_at = now
        stats = self.crawler.stats.get_stats() if self.crawler.stats is not None else {}
        entry = {
            "host": self.host, "pid": self.pid, "worker": self.config.worker,
            "run": self.config.run_id, "started": self._started, "heartbeat": time.time(),
            "pages": int(stats.get("response_received_count", 0)),
            "items": int(stats.get("item_scraped_count", 0)), "finished": finished,
            "figures": heartbeat_figures(stats),
        }  # fmt: skip
        try:
            self.client.hset(self.keys.workers, self.me, json.dumps(entry))
        except (*CONNECTION_ERRORS, redis.RedisError) as exc:
            logger.debug(f"Frontier: heartbeat not written: {exc}")

    def _gone(self, entry: str | None, now: float) -> bool:
        """Whether the worker of this ``P:workers`` entry is gone (module docstring)."""
        try:
            data = json.loads(entry or "")
            if data.get("finished"):
                return True
            if now - float(data["heartbeat"]) > self.config.stale_seconds:
                return True
            return data.get("host") == self.host and not pid_alive(int(data["pid"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            return True

    def live_workers(self) -> list[str]:
        """The workers of the job that are alive, this process left out."""
        assert self.client is not None and self.keys is not None
        entries: dict[str, str] = self._call(self.client.hgetall, self.keys.workers)
        now = time.time()
        return [w for w, e in entries.items() if w != self.me and not self._gone(e, now)]

    def _reclaim_gone(self) -> int:
        """Leases of owners that are not alive go back to the queue."""
        assert self.client is not None and self.keys is not None
        client, keys = self.client, self.keys
        owners: dict[str, str] = self._call(client.hgetall, keys.owners)
        entries: dict[str, str] = self._call(client.hgetall, keys.workers)
        now, gone = time.time(), set()
        for owner in set(owners.values()):
            if self._gone(entries.get(owner), now):  # no entry at all: gone too
                gone.add(owner)
        return int(self._script("RECLAIM_OWNERS", sorted(gone))) if gone else 0

    # --- open and close ---------------------------------------------------------------------
    def open(self, spider: Spider) -> JobChoice:
        settings = self.crawler.settings
        try:
            self.client = check(settings)
        except RedisUnavailable as exc:
            raise BackendUnusable(str(exc)) from None
        self.keys = keys = RedisKeys.for_job(settings, spider.name, job_arguments(spider, settings))
        self.job_id = keys.base
        if self.store is not None:
            self.store.hold()  # open until this backend has marked its last requests done
            self._held = True
        try:
            self._check_types()
            choice = self._choose()
        except BackendError as exc:
            raise BackendUnusable(str(exc)) from None
        self._opened = True
        self._beat(force=True)
        return choice

    def _at(self) -> str:
        return f"Redis at {shown_url(self.redis_config.url)}"

    def _wrong_type(self) -> str:
        """Which key of the job has a type not ours (WRONGTYPE names none); "" for none."""
        if self.client is None or self.keys is None:
            return ""
        try:
            for name, wanted in KEY_TYPES.items():
                key = getattr(self.keys, name)
                found = self.client.type(key)
                if found not in ("none", wanted):
                    return f"Redis key {key} is a {found!s}, not a {wanted}: not ours"
        except (*CONNECTION_ERRORS, redis.RedisError):
            pass
        return ""

    def _check_types(self) -> None:
        assert self.client is not None and self.keys is not None
        self._call(self.client.ping)
        if wrong := self._wrong_type():
            raise BackendError(wrong)

    def _choose(self) -> JobChoice:
        assert self.client is not None and self.keys is not None
        client, keys = self.client, self.keys
        meta: dict[str, str] = self._call(client.hgetall, keys.meta)
        note = ""
        if meta:
            live = self.live_workers()
            age = time.time() - self._last_activity(meta)
            max_age = self.config.max_age_seconds
            if self.config.fresh:
                if live:
                    raise AlreadyRunning(
                        f"{keys.spider} with these arguments is crawling on Redis"
                        f" ({len(live)} workers, e.g. {live[0]}): FRONTIER_FRESH cannot start"
                        " it afresh under them; wait for them to end or stop them"
                    )
                note = "FRONTIER_FRESH is set"
            elif meta.get("state") == FINISHED:
                if self.config.worker == 0 and not live:
                    self._reset()
                    meta = {}
            elif max_age and age > max_age and not live:
                note = f"it was last worked on {age / 3600:.1f} h ago (FRONTIER_RESUME_MAX_AGE)"
            if note:
                self._reset()
                meta = {}
        if not meta:
            now = datetime.now(UTC).isoformat()
            self._call(client.hset, keys.meta, mapping={"state": OPEN, "created_at": now})
            return JobChoice(0, resumed=False, note=note)
        reclaimed = self._reclaim_gone()
        if reclaimed:
            logger.info(f"Frontier: {reclaimed} leases of workers that are gone queued again")
        self.seeded = bool(meta.get("seeded_at"))
        counts = self.counts()
        return JobChoice(
            0,
            resumed=True,
            done=counts["done"],
            queued=counts["queued"] + counts["leased"],
            failed=counts["failed"],
        )

    def _last_activity(self, meta: dict[str, str]) -> float:
        assert self.client is not None and self.keys is not None
        entries: dict[str, str] = self._call(self.client.hgetall, self.keys.workers)
        beats = [0.0]
        for entry in entries.values():
            try:
                beats.append(float(json.loads(entry)["heartbeat"]))
            except (ValueError, TypeError, KeyError):
                continue
        with contextlib.suppress(ValueError):
            beats.append(datetime.fromisoformat(meta.get("created_at", "")).timestamp())
        return max(beats)

    def _reset(self) -> None:
        """A new crawl of the job: its frontier keys go (the items stream stays: an ingester
        may still read it). Only when no live worker is on it (``_choose``)."""
        assert self.client is not None and self.keys is not None
        names = [*self.keys.frontier_keys(), self.keys.workers]
        self._call(self.client.delete, *names)

    def counts(self) -> dict[str, int]:
        """The job's requests by state."""
        assert self.client is not None and self.keys is not None
        client, keys = self.client, self.keys
        queued = self._call(client.zcard, keys.queue)
        leased = self._call(client.zcard, keys.inflight)
        done, failed = self._call(client.hmget, keys.meta, ["done", "failed"])
        return {
            "queued": int(queued), "leased": int(leased),
            "done": int(done or 0), "failed": int(failed or 0),
        }  # fmt: skip

    def close(self, reason: str, *, finished: bool, resumable: bool) -> dict[str, int]:
        """The job is marked finished only by the FINISH script (nothing queued or leased);
        an unfinished job always stays open (other workers may be on it)."""
        try:
            if self.client is None or self.keys is None or not self._opened:
                return {}
            try:
                if finished:
                    self._script("FINISH", [datetime.now(UTC).isoformat()])
                found = self.counts()
            except BackendError as exc:
                logger.error(f"Frontier: could not be closed cleanly: {exc}")
                found = {}
            self._beat(finished=reason, force=True)
            return found
        finally:
            if self.client is not None:
                self.client.close()
            if self._held and self.store is not None:
                self._held = False
                self.store.release()

    # --- rows -------------------------------------------------------------------------------
    def find(self, fingerprint: str) -> str | None:
        assert self.client is not None and self.keys is not None
        state = self._call(self.client.hget, self.keys.seen, fingerprint)
        return None if state is None else str(state)

    def lease(
        self,
        owner: str,
        limit: int,
        deadline: float,
        max_attempts: int,
        before: Batch | None = None,
        share: tuple[int, int] | None = None,  # one queue: the workers pop it in turn
    ) -> tuple[list[LeasedRow], int]:
        if before:
            self.commit(before)  # a script of its own: the lease may then wait for its turn
        if self._idle():
            return [], 0
        too_many = f"sent {max_attempts} times without finishing"
        args = [self._owner(owner), limit, repr(deadline), max_attempts, too_many]
        flat, failed, bad = self._script("LEASE", args)
        assert self.keys is not None
        for fingerprint in bad:
            logger.warning(
                f"Frontier: queue entry {fingerprint} of {self.keys.queue} skipped:"
                f" no request data in {self.keys.requests}"
            )
        if bad:
            self._stat(BAD_ROWS, len(bad))
        rows = [
            LeasedRow(str(flat[i]), str(flat[i]), str(flat[i + 1]), int(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]
        if rows:
            self._work_here()
        else:
            self._wait_more()
        return rows, int(failed)

    def commit(self, batch: Batch) -> None:
        args: list[Any] = [
            datetime.now(UTC).isoformat(), "1" if batch.seeded else "0",
            len(batch.new), len(batch.again), len(batch.started), len(batch.done),
            len(batch.failed), len(batch.seeds),
        ]  # fmt: skip
        for row in (*batch.new, *batch.again):
            args += [row.fingerprint, row.priority, row.request]
        args += [str(row_id) for row_id in batch.started]
        args += [str(row_id) for row_id in batch.done]
        for row_id, error in batch.failed:
            args += [str(row_id), error]
        args += [f"{host} {port}" for host, port in batch.seeds]
        self._script("COMMIT", args)
        self.seeded = self.seeded or batch.seeded
        if batch.new or batch.again:
            self._work_here()

    def renew(self, owner: str, deadline: float) -> None:
        self._script("RENEW", [self._owner(owner), repr(deadline)])

    def reclaim_expired(self, now: float) -> int:
        return int(self._script("RECLAIM", [repr(now)]))

    def release(self, owner: str, unstarted: list[RowId]) -> None:
        self._script("RELEASE", [self._owner(owner), *(str(row_id) for row_id in unstarted)])

    def has_work(self, owner: str) -> bool:
        if time.monotonic() < self._busy_until:
            return True
        found = bool(self._script("HAS_WORK", [self._owner(owner)]))
        if found:  # other workers' leases, or a queue this worker waits to lease from
            self._busy_until = time.monotonic() + _jitter(self._idle_wait)
        return found

    def seeds(self) -> list[tuple[str, int]]:
        assert self.client is not None and self.keys is not None
        found = []
        for origin in self._call(self.client.smembers, self.keys.seeds):
            host, _, port = str(origin).rpartition(" ")
            if host and port.isdigit():
                found.append((host, int(port)))
        return sorted(found)

    def queued(self, cap: int) -> int:
        assert self.client is not None and self.keys is not None
        return min(cap, int(self._call(self.client.zcard, self.keys.queue)))

    def job_seeded(self) -> bool:
        assert self.client is not None and self.keys is not None
        if self.seeded:
            return True
        if self._idle():
            return False
        self.seeded = bool(self._call(self.client.hget, self.keys.meta, "seeded_at"))
        if not self.seeded:
            self._wait_more()
        return self.seeded

    def flush_items(self) -> bool:
        ok = True
        engine = self.crawler.engine
        scraper = getattr(engine, "scraper", None)
        itemproc = getattr(scraper, "itemproc", None)
        for pipeline in getattr(itemproc, "middlewares", ()):
            flush = getattr(pipeline, "frontier_flush", None)
            if callable(flush):
                ok = bool(flush()) and ok
        if self.store is not None and (self.store.pending_items or self.store.pending_rejects):
            ok = self.store.flush() and ok
        return ok


# what the error-ratio and status-mix checks read of a run (crawler.stats.requests_and_errors,
# crawler.quality.checks.status_classes): a worker's share, summed by `scrapy ingest`
_FIGURES = (
    keys.RESPONSES, keys.ERROR_RESPONSES, keys.NOT_MODIFIED, keys.FETCH_ERRORS,
    keys.DOWNLOAD_FAILURES, "spider_exceptions/count",
)  # fmt: skip
_STATUS_PREFIX = "downloader/response_status_count/"


def is_figure(key: str) -> bool:
    """One of the response figures a worker's heartbeat carries."""
    return key in _FIGURES or key.startswith(_STATUS_PREFIX)


def heartbeat_figures(stats: Mapping[str, Any]) -> dict[str, int]:
    """The worker's response figures so far: a dozen numbers in its heartbeat."""
    return {
        key: int(value) for key, value in stats.items() if is_figure(key) and isinstance(value, int)
    }
