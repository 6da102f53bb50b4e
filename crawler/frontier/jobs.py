"""Which job a crawl works on: the unfinished one it resumes, or a new one.

A job is one crawl of a spider with its arguments (``job_key``). Running the same command again
after a stop or a kill finds the job still open and resumes it: its leases (held by processes that
are gone) are queued again and the crawl goes on from what was not done. A job is not resumed
when ``FRONTIER_FRESH`` asks for a fresh start, when no process has worked on it for longer than
``FRONTIER_RESUME_MAX_AGE``, or when nothing is left to do (it then counts as finished). A live
process still working on the job makes the new crawl refuse to start (``AlreadyRunning``):
two crawls of one job join only as workers of one run (``WORKERS``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crawler.storage import frontier as sql
from crawler.storage.liveness import live_runs, reap_dead_runs
from crawler.storage.schema import iso_utc, transaction

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Mapping

    from scrapy.settings import BaseSettings


# The arguments of a spider without ``parse_arguments`` (Scrapy sets every ``-a`` as an attribute,
# which cannot be told from the spider's own ones): `scrapy crawl` and `runspider` put them here.
ARGUMENTS_SETTING = "FRONTIER_JOB_ARGUMENTS"


class AlreadyRunning(Exception):
    """A live process works on the job; the message is the one line users see."""


@dataclass(frozen=True)
class JobChoice:
    job_id: int
    resumed: bool
    done: int = 0
    queued: int = 0
    failed: int = 0
    previous_run: int | None = None
    note: str = ""  # why an unfinished job was not resumed


def job_key(spider: str, arguments: Mapping[str, Any] | None) -> str:
    """The identity of "the same command": the spider's name and its arguments."""
    text = json.dumps([spider, dict(arguments or {})], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def job_arguments(spider: Any, settings: BaseSettings) -> Mapping[str, Any]:
    """The arguments that, with its name, identify a spider's crawl: the parsed ones of our
    spiders, the ``-a`` options as given for any other."""
    parsed = getattr(spider, "arguments", None)
    if isinstance(parsed, dict) and hasattr(spider, "parse_arguments"):
        return parsed
    return settings.getdict(ARGUMENTS_SETTING)


def job_counts(conn: sqlite3.Connection, job_id: int) -> dict[str, int]:
    """Rows of the job by state: queued, leased, done, failed."""
    return sql.counts(conn, job_id)


def _age(last: str | None, now: datetime) -> float:
    if not last:
        return 0.0
    then = datetime.fromisoformat(last)
    then = then.replace(tzinfo=UTC) if then.tzinfo is None else then
    return (now - then).total_seconds()


def choose_job(
    conn: sqlite3.Connection,
    *,
    spider: str,
    key: str,
    fresh: bool,
    max_age_seconds: float,
    now: datetime,
    stale_seconds: float,
    host: str,
) -> JobChoice:
    """The job for a new crawl of ``spider`` whose arguments give ``key`` (module docstring)."""
    reap_dead_runs(conn, now=now, stale_seconds=stale_seconds, host=host)
    stamp = iso_utc(now)
    with transaction(conn):
        row = sql.open_job_of(conn, key)
        note = ""
        if row is not None:
            job_id = int(row["id"])
            for run_id, run_host, pid in live_runs(
                conn, job_id=job_id, now=now, stale_seconds=stale_seconds, host=host
            ):
                raise AlreadyRunning(
                    f"{spider} with these arguments is already crawling as run {run_id}"
                    f" (pid {pid} on {run_host}): wait for it to end or stop it, or add"
                    " processes to one crawl with -s WORKERS=N"
                )
            found = sql.counts(conn, job_id)
            age = _age(sql.last_activity(conn, job_id) or row["created_at"], now)
            left = found[sql.QUEUED] + found[sql.LEASED]
            if fresh:
                note = "FRONTIER_FRESH is set"
            elif max_age_seconds and age > max_age_seconds:
                note = f"it was last worked on {age / 3600:.1f} h ago (FRONTIER_RESUME_MAX_AGE)"
            elif not left and row["seeded_at"]:
                sql.set_job_state(conn, job_id, sql.FINISHED, stamp)
            else:
                sql.reclaim(conn, job_id)
                return JobChoice(
                    job_id,
                    resumed=True,
                    done=found[sql.DONE],
                    queued=left,
                    failed=found[sql.FAILED],
                    previous_run=sql.last_run_of(conn, job_id),
                )
            if note:
                sql.set_job_state(conn, job_id, sql.ABANDONED, stamp)
        return JobChoice(sql.create_job(conn, spider, key, stamp), resumed=False, note=note)
