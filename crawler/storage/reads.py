"""Read-only access to the store for commands (``scrapy export``, ``scrapy runs``).

The file is opened with SQLite's ``mode=ro`` URI, so reading never creates, migrates or writes
a database; a missing or foreign file is a ``StoreError`` with a one-line message.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

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


def unfinished_runs_since(conn: sqlite3.Connection, hours: float) -> list[dict[str, Any]]:
    """Runs without a finish time that started within the last ``hours``, oldest first."""
    sql = (
        "SELECT id, spider, started_at FROM runs WHERE finished_at IS NULL"
        " AND julianday(started_at) >= julianday('now') - ? ORDER BY started_at"
    )
    return [dict(row) for row in _runs_query(conn, sql, (hours / 24.0,))]


def spiders(conn: sqlite3.Connection) -> list[str]:
    """The names of the spiders that have runs in the store."""
    rows = _runs_query(conn, "SELECT DISTINCT spider FROM runs ORDER BY spider", ())
    return [str(row[0]) for row in rows]
