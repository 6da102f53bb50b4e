"""The SQL of the durable frontier (``crawler.frontier``): jobs, request rows and leases.

A job is one crawl of a spider with its arguments (``frontier_jobs``); its requests are rows of
``frontier``, unique by fingerprint within the job: the table is the queue and the dupefilter.
A row is ``queued``, ``leased`` (by ``owner`` until ``deadline``, unix seconds), ``done`` (its
request data cleared: only the fingerprint stays, as "seen") or ``failed`` (with ``error``).
The functions take the connection and run inside the caller's transaction unless they say so.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from crawler.frontier.backend import DONE as DONE
from crawler.frontier.backend import FAILED as FAILED
from crawler.frontier.backend import LEASED as LEASED
from crawler.frontier.backend import QUEUED as QUEUED
from crawler.frontier.backend import LeasedRow as LeasedRow
from crawler.frontier.backend import NewRequest as NewRequest

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

STATES = (QUEUED, LEASED, DONE, FAILED)
OPEN, FINISHED, CLOSED, ABANDONED = "open", "finished", "closed", "abandoned"


def check_table(conn: sqlite3.Connection) -> None:
    """``sqlite3.DatabaseError`` when ``frontier`` lacks a column this code reads."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(frontier)")}
    wanted = {"id", "job_id", "fingerprint", "url", "state", "priority", "depth", "attempts",
              "owner", "deadline", "request", "error"}  # fmt: skip
    if missing := sorted(wanted - columns):
        what = "no frontier table" if not columns else f"missing columns {', '.join(missing)}"
        raise sqlite3.DatabaseError(f"the frontier table is not ours: {what}")


# --- jobs ------------------------------------------------------------------------------------
def open_job_of(conn: sqlite3.Connection, key: str) -> sqlite3.Row | None:
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT * FROM frontier_jobs WHERE job_key = ? AND state = ? ORDER BY id DESC LIMIT 1",
        (key, OPEN),
    ).fetchone()


def job(conn: sqlite3.Connection, job_id: int) -> sqlite3.Row | None:
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT * FROM frontier_jobs WHERE id = ?", (job_id,)
    ).fetchone()


def create_job(conn: sqlite3.Connection, spider: str, key: str, now: str) -> int:
    cursor = conn.execute(
        "INSERT INTO frontier_jobs (spider, job_key, state, created_at) VALUES (?, ?, ?, ?)",
        (spider, key, OPEN, now),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def set_job_state(conn: sqlite3.Connection, job_id: int, state: str, now: str) -> None:
    conn.execute(
        "UPDATE frontier_jobs SET state = ?, closed_at = ? WHERE id = ?", (state, now, job_id)
    )


def mark_seeded(conn: sqlite3.Connection, job_id: int, now: str) -> None:
    conn.execute(
        "UPDATE frontier_jobs SET seeded_at = ? WHERE id = ? AND seeded_at IS NULL", (now, job_id)
    )


def add_seeds(conn: sqlite3.Connection, job_id: int, origins: Iterable[tuple[str, int]]) -> None:
    """Remember the (host, port) origins the job's seeds named (a resumed crawl names them)."""
    known = set(seeds(conn, job_id))
    merged = sorted(known | {(str(host), int(port)) for host, port in origins})
    if len(merged) != len(known):
        conn.execute(
            "UPDATE frontier_jobs SET seeds = ? WHERE id = ?", (json.dumps(merged), job_id)
        )


def seeds(conn: sqlite3.Connection, job_id: int) -> list[tuple[str, int]]:
    row = conn.execute("SELECT seeds FROM frontier_jobs WHERE id = ?", (job_id,)).fetchone()
    try:
        found = json.loads(row[0]) if row and row[0] else []
        return [(str(host), int(port)) for host, port in found]
    except (ValueError, TypeError):
        return []  # not ours: no origin is named


def last_activity(conn: sqlite3.Connection, job_id: int) -> str | None:
    """When a process last worked on the job (heartbeat, else start), ISO text."""
    row = conn.execute(
        "SELECT MAX(COALESCE(w.heartbeat_at, r.started_at)) FROM runs r"
        " LEFT JOIN run_workers w ON w.run_id = r.id WHERE r.job_id = ?",
        (job_id,),
    ).fetchone()
    return row[0] if row and row[0] else None


def last_run_of(conn: sqlite3.Connection, job_id: int) -> int | None:
    row = conn.execute("SELECT MAX(id) FROM runs WHERE job_id = ?", (job_id,)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def counts(conn: sqlite3.Connection, job_id: int) -> dict[str, int]:
    found = dict.fromkeys(STATES, 0)
    for state, number in conn.execute(
        "SELECT state, COUNT(*) FROM frontier WHERE job_id = ? GROUP BY state", (job_id,)
    ):
        found[str(state)] = int(number)
    return found


# --- requests --------------------------------------------------------------------------------
def find(conn: sqlite3.Connection, job_id: int, fingerprint: str) -> tuple[int, str] | None:
    row = conn.execute(
        "SELECT id, state FROM frontier WHERE job_id = ? AND fingerprint = ?",
        (job_id, fingerprint),
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def insert(conn: sqlite3.Connection, job_id: int, rows: Iterable[NewRequest]) -> None:
    """Queue new requests; a fingerprint the job already has is left as it is."""
    conn.executemany(
        "INSERT OR IGNORE INTO frontier (job_id, fingerprint, url, state, priority, depth,"
        " request) VALUES (?, ?, ?, 'queued', ?, ?, ?)",
        [(job_id, r.fingerprint, r.url, r.priority, r.depth, r.request) for r in rows],
    )


def requeue(conn: sqlite3.Connection, job_id: int, rows: Iterable[NewRequest]) -> None:
    """Queue these requests again (a retry, ``dont_filter``), with their new data. A process
    that queues a request again finished with its lease: the attempts start over."""
    conn.executemany(
        "INSERT INTO frontier (job_id, fingerprint, url, state, priority, depth, request)"
        " VALUES (?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT (job_id, fingerprint) DO UPDATE SET"
        " state = 'queued', url = excluded.url, priority = excluded.priority,"
        " depth = excluded.depth, request = excluded.request, owner = NULL, deadline = NULL,"
        " error = NULL, attempts = 0",
        [(job_id, r.fingerprint, r.url, r.priority, r.depth, r.request) for r in rows],
    )


def lease(
    conn: sqlite3.Connection,
    job_id: int,
    *,
    owner: str,
    limit: int,
    deadline: float,
    max_attempts: int,
    share: tuple[int, int] | None = None,
) -> tuple[list[LeasedRow], int]:
    """Lease up to ``limit`` queued rows, highest priority first, oldest first within one.

    Of the rows at the head of the queue, those already started ``max_attempts`` times are
    marked failed instead (their process kept dying); the second value is how many. The cost
    does not grow with the queue: only the head is read. A lease is no attempt: ``started``
    counts one when the process sends the request. ``share`` ``(k, n)``: only rows whose id is
    k modulo n (one worker's part of the queue).
    """
    part, params = "", [job_id]
    if share is not None:  # the rows of part k of n
        part = " AND id % ? = ?"
        params += [share[1], share[0]]
    rows = conn.execute(
        "SELECT id, fingerprint, request, attempts FROM frontier"
        f" WHERE job_id = ? AND state = 'queued'{part} ORDER BY priority DESC, id LIMIT ?",
        (*params, limit),
    ).fetchall()
    spent = [(row[0],) for row in rows if int(row[3]) >= max_attempts]
    conn.executemany(
        "UPDATE frontier SET state = 'failed', request = NULL, error = ? WHERE id = ?",
        [(f"sent {max_attempts} times without finishing", row_id) for (row_id,) in spent],
    )
    fresh = [row for row in rows if int(row[3]) < max_attempts]
    conn.executemany(
        "UPDATE frontier SET state = 'leased', owner = ?, deadline = ? WHERE id = ?",
        [(owner, deadline, row[0]) for row in fresh],
    )
    leased = [LeasedRow(int(r[0]), str(r[1]), r[2], int(r[3])) for r in fresh]
    return leased, len(spent)


def _by_row(job_id: int, rows: Iterable[Any], *extra: Any) -> tuple[list[Any], list[Any]]:
    """Parameters for the rows named by id (an int) and by fingerprint (a str: a request the
    process took before it was written), ``extra`` first."""
    by_id = [(*extra, row) for row in rows if isinstance(row, int)]
    by_fp = [(*extra, job_id, row) for row in rows if not isinstance(row, int)]
    return by_id, by_fp


def _update(
    conn: sqlite3.Connection, job_id: int, change: str, rows: Iterable[Any], *extra: Any
) -> None:
    """``UPDATE frontier SET change`` for leased rows named by id or by fingerprint."""
    by_id, by_fp = _by_row(job_id, list(rows), *extra)
    if by_id:
        conn.executemany(f"UPDATE frontier SET {change} WHERE id = ? AND state = 'leased'", by_id)
    if by_fp:
        conn.executemany(
            f"UPDATE frontier SET {change} WHERE job_id = ? AND fingerprint = ?"
            " AND state = 'leased'",
            by_fp,
        )


def finish(
    conn: sqlite3.Connection, job_id: int, done: Sequence[Any], failed: Sequence[tuple[Any, str]]
) -> None:
    """Leased rows finished: done (only the fingerprint stays, as "seen") or failed."""
    cleared = "request = NULL, owner = NULL, deadline = NULL"
    _update(conn, job_id, f"state = 'done', {cleared}", done)
    for row_id, error in failed:
        _update(conn, job_id, f"state = 'failed', {cleared}, error = ?", [row_id], error)


def give_back(conn: sqlite3.Connection, job_id: int, row_ids: Sequence[Any]) -> None:
    """Leased rows this process never started: queued again."""
    _update(conn, job_id, "state = 'queued', owner = NULL, deadline = NULL", row_ids)


def started(conn: sqlite3.Connection, job_id: int, row_ids: Sequence[Any]) -> None:
    """Count an attempt for each of these leased rows: their requests were sent."""
    _update(conn, job_id, "attempts = attempts + 1", row_ids)


def insert_leased(
    conn: sqlite3.Connection, job_id: int, rows: Iterable[NewRequest], owner: str, deadline: float
) -> None:
    """New requests the process already took: inserted leased by ``owner`` (a fingerprint the
    job has is left as it is)."""
    conn.executemany(
        "INSERT OR IGNORE INTO frontier (job_id, fingerprint, url, state, priority, depth,"
        " request, owner, deadline) VALUES (?, ?, ?, 'leased', ?, ?, ?, ?, ?)",
        [
            (job_id, r.fingerprint, r.url, r.priority, r.depth, r.request, owner, deadline)
            for r in rows
        ],
    )


def renew(conn: sqlite3.Connection, job_id: int, owner: str, deadline: float) -> None:
    conn.execute(
        "UPDATE frontier SET deadline = ? WHERE job_id = ? AND state = 'leased' AND owner = ?",
        (deadline, job_id, owner),
    )


def reclaim(
    conn: sqlite3.Connection, job_id: int, *, now: float | None = None, owner_prefix: str = ""
) -> int:
    """Queue again the leases that expired before ``now`` (all leases when ``now`` is None),
    or only those of owners starting with ``owner_prefix``; returns how many."""
    sql = "UPDATE frontier SET state = 'queued', owner = NULL, deadline = NULL"
    sql += " WHERE job_id = ? AND state = 'leased'"
    params: list[Any] = [job_id]
    if now is not None:
        sql += " AND deadline < ?"
        params.append(now)
    if owner_prefix:
        sql += " AND substr(owner, 1, ?) = ?"
        params += [len(owner_prefix), owner_prefix]
    return int(conn.execute(sql, params).rowcount)


def has_work(conn: sqlite3.Connection, job_id: int, owner: str) -> bool:
    """Rows queued, or leased by another process (which may add more)."""
    queued = conn.execute(
        "SELECT 1 FROM frontier WHERE job_id = ? AND state = 'queued' LIMIT 1", (job_id,)
    ).fetchone()
    if queued:
        return True
    others = conn.execute(
        "SELECT 1 FROM frontier WHERE job_id = ? AND state = 'leased' AND owner <> ? LIMIT 1",
        (job_id, owner),
    ).fetchone()
    return others is not None


def queued(conn: sqlite3.Connection, job_id: int, cap: int) -> int:
    """Queued rows of the job, counted up to ``cap`` (the count stays cheap on a huge queue)."""
    row = conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM frontier WHERE job_id = ? AND state = 'queued'"
        " LIMIT ?)",
        (job_id, cap),
    ).fetchone()
    return int(row[0])
