"""Named export cursors: ``--changed-since-last-export NAME`` exports only new and changed rows.

A cursor (``export_cursors`` table: ``name``, ``table_name``, ``last_exported_at``,
``updated_at``, ``rows``, ``output``) holds the latest ``changed_at`` an export under that name
delivered. It moves only after the output was published. A crawl still running may commit rows
stamped before that point later, so an unfinished run that started within
``EXPORT_CURSOR_INFLIGHT_HOURS`` holds the cursor at its start: those rows come again next time
(at least once, never skipped). A run whose processes are gone (killed: see
``crawler.storage.liveness``, ``RUN_STALE_SECONDS``) commits nothing more and holds nothing back.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from crawler import defaults
from crawler.export import ExportError
from crawler.export.columns import to_datetime
from crawler.storage.reads import unfinished_runs_since
from crawler.storage.schema import migrate, transaction
from crawler.storage.store import utc_now


@dataclass(frozen=True)
class Cursor:
    name: str
    table: str
    last_exported_at: str | None  # None: never exported, everything is new


def open_writable(path: str | Path, busy_timeout: float) -> sqlite3.Connection:
    """A read-write connection to an existing store, migrated (it gains ``export_cursors``)."""
    file = Path(path)
    if not file.is_file():
        what = "is not a file" if file.exists() else "does not exist"
        raise ExportError(f"{file}: no store there ({what}); run a crawl first or give --db")
    try:
        conn = sqlite3.connect(file, timeout=busy_timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        migrate(conn)
    except sqlite3.Error as exc:
        raise ExportError(f"{file}: cannot open the store for the export cursor: {exc}") from exc
    return conn


def load(conn: sqlite3.Connection, name: str, table: str) -> Cursor:
    row = conn.execute(
        "SELECT last_exported_at FROM export_cursors WHERE name = ? AND table_name = ?",
        (name, table),
    ).fetchone()
    return Cursor(name, table, None if row is None else row[0])


def next_position(
    conn: sqlite3.Connection,
    cursor: Cursor,
    exported_max: str | None,
    inflight_hours: float,
    stale_seconds: float = defaults.RUN_STALE_SECONDS,
) -> str | None:
    """Where the cursor goes after exporting rows up to ``exported_max`` (never backwards)."""
    target = exported_max
    if target is not None and inflight_hours > 0:
        running = unfinished_runs_since(conn, inflight_hours, stale_seconds=stale_seconds)
        if running:  # 1 ms before the oldest running crawl began: its rows come again
            start = to_datetime(running[0]["started_at"]) - timedelta(milliseconds=1)
            held = start.isoformat(timespec="milliseconds")
            target = min(target, held)
    if cursor.last_exported_at is None:
        return target
    return cursor.last_exported_at if target is None else max(cursor.last_exported_at, target)


def advance(
    conn: sqlite3.Connection, cursor: Cursor, position: str | None, rows: int, output: str
) -> None:
    """Record a published export under the cursor's name."""
    try:
        with transaction(conn):
            conn.execute(
                "INSERT INTO export_cursors"
                " (name, table_name, last_exported_at, updated_at, rows, output)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name, table_name) DO UPDATE SET"
                " last_exported_at = excluded.last_exported_at,"
                " updated_at = excluded.updated_at, rows = excluded.rows, output = excluded.output",
                (cursor.name, cursor.table, position, utc_now(), rows, output),
            )
    except sqlite3.Error as exc:
        raise ExportError(
            f"{output} was written, but cursor {cursor.name!r} not moved: {exc}"
        ) from exc
