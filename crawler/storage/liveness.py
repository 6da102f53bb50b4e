"""Which crawl processes are alive: the ``run_workers`` rows, and runs whose processes are gone.

Each crawl process holds a ``run_workers`` row (host, pid, ``heartbeat_at``) that its run recorder
renews every ``RUN_HEARTBEAT_SECONDS``. A row not finished is *dead* when its pid is gone from
this host, or when its heartbeat is older than ``RUN_STALE_SECONDS`` (another host, a reused pid,
a hung machine). A run not finished is dead when none of its rows is alive (unless they all finished
normally within ``RUN_STALE_SECONDS``: a workers parent is writing the run row), or, with no rows
at all, when it started more than ``RUN_STALE_SECONDS`` ago. ``find_dead`` only reads (for
``scrapy runs`` and export cursors on a read-only store); ``reap_dead_runs`` marks what it finds
``killed``, in one transaction; ``live_runs`` says which processes work on a frontier job.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from crawler.storage.schema import transaction

if TYPE_CHECKING:
    import sqlite3

KILLED = "killed"  # the finish reason of a run or worker whose process was found gone
KILLED_EXIT_STATUS = 1
_EPOCH = datetime.min.replace(tzinfo=UTC)

_WORKERS = (
    "SELECT run_id, worker, host, pid, heartbeat_at, finished_at, finish_reason, pages, items"
    " FROM run_workers"
)
_OPEN_RUNS = "SELECT id, started_at, job_id FROM runs WHERE finished_at IS NULL"


def this_host() -> str:
    """The name this machine records in ``run_workers.host``."""
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, exited but not waited for, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    except OSError:
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (not Linux) or gone meanwhile
    end = text.rfind(")")  # the command name may hold spaces and parentheses
    return text[end + 2 : end + 3] == "Z"


def parse_time(value: str | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime (a naive one is taken as UTC)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _aware(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


@dataclass(frozen=True)
class WorkerRow:
    run_id: int
    worker: int
    host: str
    pid: int
    heartbeat_at: str | None
    finished_at: str | None
    finish_reason: str | None
    pages: int | None
    items: int | None

    def dead(self, *, now: datetime, stale_seconds: float, host: str) -> bool:
        """Not finished, and its process gone from this host or silent for too long."""
        if self.finished_at is not None:
            return False
        if self.host == host and not pid_alive(self.pid):
            return True
        seen = parse_time(self.heartbeat_at)
        return seen is None or (_aware(now) - seen).total_seconds() > stale_seconds

    def live(self, *, now: datetime, stale_seconds: float, host: str) -> bool:
        alive = not self.dead(now=now, stale_seconds=stale_seconds, host=host)
        return self.finished_at is None and alive


@dataclass
class DeadSet:
    """What ``find_dead`` found: worker rows and runs whose processes are gone."""

    workers: list[WorkerRow] = field(default_factory=list)
    runs: dict[int, str | None] = field(default_factory=dict)  # run id -> last seen (ISO)

    def __bool__(self) -> bool:
        return bool(self.workers or self.runs)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return conn.execute(sql, (name,)).fetchone() is not None


def worker_rows(conn: sqlite3.Connection, run_id: int | None = None) -> list[WorkerRow]:
    """The ``run_workers`` rows (of one run), by run and worker; none in a store without them."""
    if not _has_table(conn, "run_workers"):
        return []
    where, params = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
    rows = conn.execute(f"{_WORKERS} {where} ORDER BY run_id, worker", params).fetchall()
    return [WorkerRow(*tuple(row)) for row in rows]


def _open_runs(conn: sqlite3.Connection) -> list[tuple[int, str | None, int | None]]:
    columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(runs)")}
    sql = _OPEN_RUNS if "job_id" in columns else _OPEN_RUNS.replace("job_id", "NULL")
    return [(int(r[0]), r[1], r[2]) for r in conn.execute(sql).fetchall()]


def find_dead(
    conn: sqlite3.Connection, *, now: datetime, stale_seconds: float, host: str
) -> DeadSet:
    """The unfinished worker rows and runs whose processes are gone (see the module doc)."""
    found = DeadSet()
    by_run: dict[int, list[WorkerRow]] = {}
    for row in worker_rows(conn):
        by_run.setdefault(row.run_id, []).append(row)
        if row.dead(now=now, stale_seconds=stale_seconds, host=host):
            found.workers.append(row)
    for run_id, started_at, _ in _open_runs(conn):
        workers = by_run.get(run_id, [])
        if workers:
            if any(w.live(now=now, stale_seconds=stale_seconds, host=host) for w in workers):
                continue
            if _finalising(workers, now, stale_seconds):
                continue
            beats = [w.heartbeat_at for w in workers if w.heartbeat_at]
            found.runs[run_id] = max(beats, key=_sort_key) if beats else started_at
            continue
        started = parse_time(started_at)
        if started is None or (_aware(now) - started).total_seconds() > stale_seconds:
            found.runs[run_id] = started_at
    return found


def _finalising(workers: list[WorkerRow], now: datetime, stale_seconds: float) -> bool:
    """Every worker finished normally, the last one within ``stale_seconds``: the parent of a
    run of several workers writes the run row after they all end (``crawler.workers``)."""
    if any(w.finished_at is None or w.finish_reason == KILLED for w in workers):
        return False
    last = max((parse_time(w.finished_at) for w in workers), key=lambda t: t or _EPOCH)
    return last is not None and (_aware(now) - last).total_seconds() <= stale_seconds


def _sort_key(value: str) -> datetime:
    return parse_time(value) or _EPOCH


def _last_seen_text(value: str | None) -> str:
    moment = parse_time(value)
    return "unknown" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def reap_dead_runs(
    conn: sqlite3.Connection, *, now: datetime, stale_seconds: float, host: str
) -> list[int]:
    """Mark dead worker rows and runs left without a live process ``killed``; one transaction.

    A dead worker row is finished at its last heartbeat; a dead run at its last heartbeat (or
    its start), exit status 1, failure ``process gone (last seen …)``, its page and item counts
    summed from its worker rows when it has none. Returns the ids of the runs marked.
    """
    with transaction(conn):  # found and marked under one write lock: no one finishes meanwhile
        dead = find_dead(conn, now=now, stale_seconds=stale_seconds, host=host)
        conn.executemany(
            "UPDATE run_workers SET finished_at = heartbeat_at, finish_reason = ?"
            " WHERE run_id = ? AND worker = ? AND finished_at IS NULL",
            [(KILLED, w.run_id, w.worker) for w in dead.workers],
        )
        for run_id, last_seen in dead.runs.items():
            conn.execute(
                "UPDATE runs SET finished_at = COALESCE(?, started_at), finish_reason = ?,"
                " exit_status = ?, failure = ?,"
                " pages = COALESCE(pages, (SELECT sum(pages) FROM run_workers WHERE run_id = ?)),"
                " items = COALESCE(items, (SELECT sum(items) FROM run_workers WHERE run_id = ?))"
                " WHERE id = ? AND finished_at IS NULL",
                (
                    last_seen,
                    KILLED,
                    KILLED_EXIT_STATUS,
                    f"process gone (last seen {_last_seen_text(last_seen)})",
                    run_id,
                    run_id,
                    run_id,
                ),
            )
    return sorted(dead.runs)


def live_runs(
    conn: sqlite3.Connection, *, job_id: int, now: datetime, stale_seconds: float, host: str
) -> list[tuple[int, str, int]]:
    """``(run id, host, pid)`` of each live process working on frontier job ``job_id``.

    A run of the job with no worker row yet that started within ``stale_seconds`` (a workers
    parent before its children start) counts as live with host ``""`` and pid 0.
    """
    live: list[tuple[int, str, int]] = []
    for run_id, started_at, run_job in _open_runs(conn):
        if run_job != job_id:
            continue
        workers = worker_rows(conn, run_id)
        if workers:
            live += [
                (run_id, w.host, w.pid)
                for w in workers
                if w.live(now=now, stale_seconds=stale_seconds, host=host)
            ]
            continue
        started = parse_time(started_at)
        if started is not None and (_aware(now) - started).total_seconds() <= stale_seconds:
            live.append((run_id, "", 0))
    return live
