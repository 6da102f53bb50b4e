"""Read-only access to the store for commands (``scrapy export``, ``scrapy runs``).

The file is opened with SQLite's ``mode=ro`` URI, so reading never creates, migrates or writes
a database; a missing or foreign file is a ``StoreError`` with a one-line message.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawler.storage.liveness import KILLED, find_dead, this_host, worker_rows
from crawler.storage.schema import BOOKKEEPING, CORE_TABLES, quote
from crawler.storage.store import StoreError

RUN_JSON_COLUMNS = ("arguments", "settings", "stats")


def open_readonly(path: str | Path, busy_timeout: float = 30.0) -> sqlite3.Connection:
    """A read-only connection to the store at ``path``; ``StoreError`` if there is none."""
    file = Path(path)
    if not file.is_file():
        what = "is not a file" if file.exists() else "does not exist"
        raise StoreError(f"{file}: no store there ({what}); run a crawl first or give --db")
    uri = f"{file.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails if not SQLite
    except sqlite3.Error as exc:
        raise StoreError(f"{file}: cannot read the store: {exc}") from exc
    return conn


def table_columns(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    """``{column: declared type}`` of ``table`` in table order; empty if there is no such table."""
    rows = conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
    return {str(row[1]): str(row[2]).upper() for row in rows}


def item_tables(conn: sqlite3.Connection) -> list[str]:
    """The item tables of the store: every table with the store's bookkeeping columns."""
    names = [
        str(row[0])
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name"
        )
    ]
    return [
        name
        for name in names
        if name not in CORE_TABLES and BOOKKEEPING.keys() <= table_columns(conn, name).keys()
    ]


def run_record(row: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    """One ``runs`` row as a dict, its JSON columns decoded."""
    run = dict(row)
    for name in RUN_JSON_COLUMNS:
        if isinstance(run.get(name), str):
            run[name] = json.loads(run[name])
    return run


def _runs_query(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
    if not table_columns(conn, "runs"):
        raise StoreError("the file has no runs table (not a crawler store?)")
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(sql, params).fetchall()


def list_runs(
    conn: sqlite3.Connection, limit: int = 20, spider: str | None = None
) -> list[dict[str, Any]]:
    """The latest ``limit`` runs (of ``spider``, if given), newest first."""
    where, params = ("WHERE spider = ?", (spider,)) if spider else ("", ())
    sql = f"SELECT * FROM runs {where} ORDER BY id DESC LIMIT ?"
    return [run_record(row) for row in _runs_query(conn, sql, (*params, limit))]


def get_run(conn: sqlite3.Connection, run_id: int) -> dict[str, Any] | None:
    rows = _runs_query(conn, "SELECT * FROM runs WHERE id = ?", (run_id,))
    return run_record(rows[0]) if rows else None


def unfinished_runs_since(
    conn: sqlite3.Connection, hours: float, *, stale_seconds: float | None = None
) -> list[dict[str, Any]]:
    """Runs without a finish time that started within the last ``hours``, oldest first; with
    ``stale_seconds``, not those whose processes are gone (``crawler.storage.liveness``)."""
    sql = (
        "SELECT id, spider, started_at FROM runs WHERE finished_at IS NULL"
        " AND julianday(started_at) >= julianday('now') - ? ORDER BY started_at"
    )
    runs = [dict(row) for row in _runs_query(conn, sql, (hours / 24.0,))]
    if stale_seconds is None or not runs:
        return runs
    gone = dead_runs(conn, stale_seconds)
    return [run for run in runs if run["id"] not in gone]


def dead_runs(conn: sqlite3.Connection, stale_seconds: float) -> dict[int, str | None]:
    """Unfinished runs whose processes are gone, not marked yet: run id -> last seen."""
    now = datetime.now(UTC)
    return find_dead(conn, now=now, stale_seconds=stale_seconds, host=this_host()).runs


def worker_states(
    conn: sqlite3.Connection, run_id: int, stale_seconds: float
) -> list[dict[str, Any]]:
    """The ``run_workers`` rows of a run, by worker, each with a ``state``: its finish reason,
    ``killed`` for a process gone but not marked yet, or ``running``."""
    if not table_columns(conn, "run_workers"):
        return []  # a store from before the workers table
    now, host = datetime.now(UTC), this_host()
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    sql = "SELECT * FROM run_workers WHERE run_id = ? ORDER BY worker"
    workers = [dict(row) for row in cursor.execute(sql, (run_id,))]
    for worker, row in zip(workers, worker_rows(conn, run_id), strict=True):
        if worker["finished_at"] is not None:
            worker["state"] = worker["finish_reason"] or "finished"
        elif row.dead(now=now, stale_seconds=stale_seconds, host=host):
            worker["state"] = KILLED
        else:
            worker["state"] = "running"
    return workers


def resumable_runs(conn: sqlite3.Connection, run_ids: list[int]) -> set[int]:
    """Of ``run_ids``, the latest run of each frontier job that is open with requests queued or
    leased: running the same command again resumes it."""
    if not run_ids or "job_id" not in table_columns(conn, "runs"):
        return set()
    if not (table_columns(conn, "frontier_jobs") and table_columns(conn, "frontier")):
        return set()
    marks = ", ".join("?" * len(run_ids))
    sql = (
        "SELECT max(r.id) FROM runs r JOIN frontier_jobs j ON j.id = r.job_id"
        f" WHERE j.state = 'open' AND r.job_id IN (SELECT job_id FROM runs WHERE id IN ({marks}))"
        " AND EXISTS (SELECT 1 FROM frontier f WHERE f.job_id = j.id"
        " AND f.state IN ('queued', 'leased')) GROUP BY r.job_id"
    )
    latest = {int(row[0]) for row in conn.execute(sql, run_ids)}
    return latest & set(run_ids)


def job_summary(conn: sqlite3.Connection, job_id: int) -> dict[str, Any] | None:
    """A frontier job's state and its request rows counted by state; None if there is none."""
    if not (table_columns(conn, "frontier_jobs") and table_columns(conn, "frontier")):
        return None
    row = conn.execute("SELECT state FROM frontier_jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        return None
    counts = dict.fromkeys(("queued", "leased", "done", "failed"), 0)
    sql = "SELECT state, count(*) FROM frontier WHERE job_id = ? GROUP BY state"
    counts.update({str(state): int(n) for state, n in conn.execute(sql, (job_id,))})
    return {"id": job_id, "state": str(row[0]), **counts}


def spiders(conn: sqlite3.Connection) -> list[str]:
    """The names of the spiders that have runs in the store."""
    rows = _runs_query(conn, "SELECT DISTINCT spider FROM runs ORDER BY spider", ())
    return [str(row[0]) for row in rows]
