"""The store's schema: numbered migrations for the core tables, and one table per item class.

Core tables (``runs``, ``rejects``, ``fetch_state``) change only through ``MIGRATIONS``, applied
in order and recorded in ``PRAGMA user_version``. Item tables are derived from the item
dataclass: one column per field, a unique index on the natural key, and bookkeeping columns; a
field added to the class later becomes a new column (additive only).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from crawler.items import FieldSpec, field_specs, item_key, item_table

MIGRATIONS: list[str] = [
    # 1: runs, rejects and per-URL fetch state
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        spider TEXT NOT NULL,
        arguments TEXT,
        profile TEXT,
        settings TEXT,
        started_at TEXT,
        finished_at TEXT,
        finish_reason TEXT,
        pages INTEGER,
        items INTEGER,
        rejects INTEGER,
        duplicates INTEGER,
        errors INTEGER,
        exit_status INTEGER,
        stats TEXT
    );
    CREATE TABLE rejects (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs(id),
        item_type TEXT,
        item TEXT,
        reason TEXT,
        url TEXT,
        created_at TEXT
    );
    CREATE INDEX rejects_run_id ON rejects(run_id);
    CREATE TABLE fetch_state (
        url TEXT PRIMARY KEY,
        status INTEGER,
        etag TEXT,
        last_modified TEXT,
        content_hash TEXT,
        fetched_at TEXT,
        run_id INTEGER
    );
    """,
    # 2: named export cursors (`scrapy export --changed-since-last-export NAME`)
    """
    CREATE TABLE export_cursors (
        name TEXT NOT NULL,
        table_name TEXT NOT NULL,
        last_exported_at TEXT,
        updated_at TEXT,
        rows INTEGER,
        output TEXT,
        PRIMARY KEY (name, table_name)
    );
    """,
    # 3: why a run failed (the health monitor's verdict; NULL when it worked)
    """
    ALTER TABLE runs ADD COLUMN failure TEXT;
    """,
    # 4: fetch state per spider (`scope`) and URL, linked to the item row its fetch stored.
    # A URL-only row cannot say whose items back it (another spider's 304 may have replaced it):
    # such rows are dropped, so each spider's next crawl fetches in full once.
    """
    DROP TABLE fetch_state;
    CREATE TABLE fetch_state (
        scope TEXT NOT NULL,
        url TEXT NOT NULL,
        status INTEGER,
        etag TEXT,
        last_modified TEXT,
        content_hash TEXT,
        fetched_at TEXT,
        run_id INTEGER,
        item_table TEXT,
        item_url TEXT,
        PRIMARY KEY (scope, url)
    );
    """,
    # 5: the columns of tables inferred from schema-less items (original key, kind: see
    # crawler.storage.inferred), and items that no table could take, kept as JSON
    """
    CREATE TABLE item_columns (
        table_name TEXT NOT NULL,
        column_name TEXT NOT NULL,
        item_key TEXT NOT NULL,
        kind TEXT,
        position INTEGER NOT NULL,
        PRIMARY KEY (table_name, column_name)
    );
    CREATE TABLE unplaced_items (
        id INTEGER PRIMARY KEY,
        run_id INTEGER,
        spider TEXT,
        item_type TEXT,
        json TEXT,
        reason TEXT,
        created_at TEXT
    );
    """,
    # 6: the durable frontier (crawler.frontier): a job is one crawl of a spider with its
    # arguments, resumed by rerunning the same command; its requests are rows leased by worker
    # processes. A run is one attempt at a job; run_workers holds each process of a run, its
    # heartbeat (how a killed process is recognised) and its own figures.
    """
    ALTER TABLE runs ADD COLUMN job_id INTEGER;
    CREATE TABLE run_workers (
        run_id INTEGER NOT NULL,
        worker INTEGER NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        finished_at TEXT,
        finish_reason TEXT,
        pages INTEGER,
        items INTEGER,
        exit_status INTEGER,
        stats TEXT,
        PRIMARY KEY (run_id, worker)
    );
    CREATE TABLE frontier_jobs (
        id INTEGER PRIMARY KEY,
        spider TEXT NOT NULL,
        job_key TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'open',
        created_at TEXT NOT NULL,
        seeded_at TEXT,
        seeds TEXT,
        closed_at TEXT
    );
    CREATE INDEX frontier_jobs_by_key ON frontier_jobs (job_key, state);
    CREATE TABLE frontier (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        url TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        priority INTEGER NOT NULL DEFAULT 0,
        depth INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        deadline REAL,
        request TEXT,
        error TEXT,
        UNIQUE (job_id, fingerprint)
    );
    CREATE INDEX frontier_queued ON frontier (job_id, priority DESC, id) WHERE state = 'queued';
    CREATE INDEX frontier_leased ON frontier (job_id, owner) WHERE state = 'leased';
    """,
    # 7: what a run looked like, for checks across runs and the HTML report (scrapy report):
    # samples every few seconds (a time series per worker process), the share of items with a
    # value for each field, every page that failed (scrapy export --failed), the files kept of
    # failed pages and rejected items, and the quality checks' results in the run row.
    """
    CREATE TABLE run_samples (
        run_id INTEGER NOT NULL,
        worker INTEGER NOT NULL DEFAULT 0,
        at TEXT NOT NULL,
        elapsed REAL NOT NULL,
        pages INTEGER NOT NULL DEFAULT 0,
        items INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        rejects INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        in_flight INTEGER NOT NULL DEFAULT 0,
        queued INTEGER NOT NULL DEFAULT 0,
        rendered INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX run_samples_by_run ON run_samples (run_id, worker, elapsed);
    CREATE TABLE field_coverage (
        run_id INTEGER NOT NULL,
        worker INTEGER NOT NULL DEFAULT 0,
        item_table TEXT NOT NULL,
        field TEXT NOT NULL,
        filled INTEGER NOT NULL,
        items INTEGER NOT NULL,
        PRIMARY KEY (run_id, worker, item_table, field)
    );
    CREATE TABLE failed_pages (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        url TEXT NOT NULL,
        host TEXT,
        status INTEGER,
        error TEXT,
        snapshot TEXT,
        created_at TEXT
    );
    CREATE INDEX failed_pages_by_run ON failed_pages (run_id);
    ALTER TABLE rejects ADD COLUMN snapshot TEXT;
    ALTER TABLE runs ADD COLUMN checks TEXT;
    """,
]

CORE_TABLES = frozenset(
    {
        "runs",
        "rejects",
        "fetch_state",
        "export_cursors",
        "item_columns",
        "unplaced_items",
        "run_workers",
        "frontier_jobs",
        "frontier",
        "run_samples",
        "field_coverage",
        "failed_pages",
    }
)
BOOKKEEPING: dict[str, str] = {
    "first_run_id": "INTEGER",
    "last_run_id": "INTEGER",
    "first_seen_at": "TEXT",
    "last_seen_at": "TEXT",
    "changed_at": "TEXT",
    "row_hash": "TEXT",
}
SQL_TYPES: dict[type, str] = {
    str: "TEXT",
    int: "INTEGER",
    float: "REAL",
    bool: "INTEGER",
    Decimal: "TEXT",  # the exact decimal string: a REAL would round prices
    datetime: "TEXT",
    list: "TEXT",
}
ROW_KEY = "_key"  # the row key of an item without a natural key (see crawler.itemtables)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SURROGATE = re.compile("[\ud800-\udfff]")


def bookkeeping_updates(table: str) -> list[str]:
    """The upsert's SET clauses for the bookkeeping columns of ``table`` (quoted): the last run
    and time seen, and ``changed_at`` moved only when the row's hash changed."""
    return [
        "last_run_id = excluded.last_run_id",
        "last_seen_at = excluded.last_seen_at",
        f"changed_at = CASE WHEN {table}.row_hash IS NOT excluded.row_hash"
        f" THEN excluded.last_seen_at ELSE {table}.changed_at END",
        "row_hash = excluded.row_hash",
    ]


def quote(name: str) -> str:
    """``name`` as a quoted SQL identifier; ``ValueError`` unless it is a plain identifier."""
    if not _IDENTIFIER.fullmatch(name) or name.lower().startswith("sqlite_"):
        raise ValueError(f"{name!r} is not a valid table or column name")
    return f'"{name}"'


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE … COMMIT``; rolled back as a whole on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> Iterator[str]:
    # executescript() would COMMIT our transaction first, so run the statements one by one.
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:60]!r}")


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the pending migrations in one transaction; return the schema version."""
    latest = len(MIGRATIONS)
    if conn.execute("PRAGMA user_version").fetchone()[0] == latest:
        return latest
    with transaction(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])  # re-read under lock
        if version > latest:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this code")
        for script in MIGRATIONS[version:]:
            for statement in _statements(script):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {latest}")
    return latest


def iso_utc(value: datetime) -> str:
    """ISO-8601 in UTC; a naive datetime is taken to be UTC already."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat()


def jsonable(value: Any) -> Any:
    """``value`` with everything JSON cannot hold made plain: datetimes ISO, Decimals exact."""
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def to_json(value: Any, *, canonical: bool = False) -> str:
    if canonical:
        return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"))
    return json.dumps(jsonable(value), ensure_ascii=False)


def to_db(kind: type, value: Any) -> Any:
    """One field value as stored in its column (see ``SQL_TYPES``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)  # a lone surrogate cannot be stored as UTF-8
    if kind is list:
        return _SURROGATE.sub("\ufffd", to_json(value))
    if kind is Decimal and isinstance(value, Decimal | int | float):
        return format(Decimal(str(value)) if isinstance(value, float) else Decimal(value), "f")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str | int | float | bytes):
        return value
    if isinstance(value, datetime):
        return iso_utc(value)
    return to_json(value) if isinstance(value, Mapping | list | tuple) else str(jsonable(value))


@dataclass(frozen=True)
class ItemTable:
    """The table of one item class: its DDL, its upsert, and how an item becomes a row."""

    name: str
    fields: tuple[FieldSpec, ...]
    key: tuple[str, ...]

    @classmethod
    @cache
    def for_class(cls, item_cls: type) -> ItemTable:
        """Checks the class once: names, key, no clash with core tables or bookkeeping."""
        name, fields, key = item_table(item_cls), field_specs(item_cls), item_key(item_cls)
        return cls.declared(name, fields, key, item_cls.__name__)

    @classmethod
    @cache
    def declared(
        cls, name: str, fields: tuple[FieldSpec, ...], key: tuple[str, ...], owner: str = ""
    ) -> ItemTable:
        """The table of declared ``fields``; an empty ``key``: rows are identified by ``_key``
        (a content hash the caller gives ``row``). ``TypeError`` when it cannot be stored."""
        owner = owner or name
        names = [f.name for f in fields]
        for ident in (name, *names):
            try:
                quote(ident)
            except ValueError as exc:
                raise TypeError(f"{owner}: {exc}") from None
        if name in CORE_TABLES:
            raise TypeError(f"{owner}: table name {name!r} is reserved by the store")
        if clash := sorted({n.lower() for n in names} & (BOOKKEEPING.keys() | {ROW_KEY})):
            raise TypeError(f"{owner}: field names {clash} are reserved by the store")
        if key and not set(key) <= set(names):
            raise TypeError(f"{owner}: key {key!r} must name fields of the class")
        return cls(name, fields, key)

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.key or (ROW_KEY,)

    def columns(self) -> dict[str, str]:
        own = {} if self.key else {ROW_KEY: "TEXT"}
        return {f.name: SQL_TYPES[f.type] for f in self.fields} | own | BOOKKEEPING

    def ensure(self, conn: sqlite3.Connection) -> None:
        """Create the table and its key index, or add the columns it lacks."""
        table = quote(self.name)
        with transaction(conn):
            defs = ", ".join(f"{quote(c)} {t}" for c, t in self.columns().items())
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({defs})")
            existing = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for column, sql_type in self.columns().items():
                if column not in existing:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {quote(column)} {sql_type}")
            keys = ", ".join(quote(k) for k in self.key_columns)
            index = quote(f"{self.name}_key" if self.key else f"{self.name}__key")
            conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} ({keys})")

    @property
    def upsert_sql(self) -> str:
        table, names = quote(self.name), [f.name for f in self.fields]
        columns = [*names, *([] if self.key else [ROW_KEY]), *BOOKKEEPING]
        updates = [f"{quote(n)} = excluded.{quote(n)}" for n in names if n not in self.key]
        updates += bookkeeping_updates(table)
        return (
            f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)})"
            f" VALUES ({', '.join('?' for _ in columns)})"
            f" ON CONFLICT ({', '.join(quote(k) for k in self.key_columns)})"
            f" DO UPDATE SET {', '.join(updates)}"
        )

    def row(
        self, values: Mapping[str, Any], row_key: str | None = None
    ) -> tuple[tuple[Any, ...], str]:
        """The field values as stored (and ``row_key`` for a table without a natural key), and
        their row hash (unset and volatile fields do not count).

        A volatile field (fetch time, latency) changes on every fetch of the same content: were it
        hashed, every re-crawl would set ``changed_at``.
        """
        stored = tuple(to_db(f.type, values.get(f.name)) for f in self.fields)
        present = {
            f.name: v
            for f, v in zip(self.fields, stored, strict=True)
            if v is not None and not f.volatile
        }
        if not self.key:
            if row_key is None:
                raise TypeError(f"{self.name}: an item without a natural key needs its row key")
            stored = (*stored, row_key)
        return stored, hashlib.sha256(to_json(present, canonical=True).encode()).hexdigest()
