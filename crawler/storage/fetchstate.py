"""``FetchState``: the store's ``fetch_state`` table, one row per fetched URL.

Each fetch leaves the URL's status, ETag, Last-Modified, body hash, time and run id; the next
crawl reads them to send conditional requests and to skip URLs fetched recently (see
``crawler.middlewares.conditional``). Writes are buffered and committed in one short
``BEGIN IMMEDIATE`` transaction per batch on the crawl's shared ``Store`` connection, never
across reactor turns; a batch that fails is kept for the next flush.

A row is *trusted* only when the run that wrote it has finished (``runs.finished_at`` set, and
not with the ``store_error`` reason): a crawl killed before its items were written must not
leave validators behind that would make the next crawl take those pages as unchanged.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crawler.storage import STORE_ERROR, StoreError
from crawler.storage.schema import CORE_TABLES, quote, transaction

if TYPE_CHECKING:
    from collections.abc import Iterable

    from crawler.storage import Store

logger = logging.getLogger(__name__)

_SELECT = (
    "SELECT f.url, f.status, f.etag, f.last_modified, f.content_hash, f.fetched_at, f.run_id,"
    " r.finished_at IS NOT NULL AND r.finish_reason IS NOT ? AS trusted"
    " FROM fetch_state f LEFT JOIN runs r ON r.id = f.run_id WHERE f.url = ?"
)
_UPSERT = (
    "INSERT INTO fetch_state (url, status, etag, last_modified, content_hash, fetched_at, run_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (url) DO UPDATE SET status = excluded.status,"
    " etag = excluded.etag, last_modified = excluded.last_modified,"
    " content_hash = excluded.content_hash, fetched_at = excluded.fetched_at,"
    " run_id = excluded.run_id"
)
# Item tables whose rows a 304 can mark as seen: they name their page in a `url` column.
_TOUCHABLE = frozenset({"url", "last_seen_at", "last_run_id"})


@dataclass(frozen=True)
class FetchRecord:
    """What the store knows about the last fetch of one URL."""

    url: str
    status: int | None
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    fetched_at: str | None = None  # ISO-8601, UTC
    run_id: int | None = None
    trusted: bool = False  # written by a run that finished: safe to revalidate or skip on

    def age(self, now: datetime | None = None) -> float:
        """Seconds since the fetch (infinite when the time is unknown)."""
        try:
            fetched = datetime.fromisoformat(self.fetched_at or "")
        except ValueError:
            return float("inf")
        if fetched.tzinfo is None:
            fetched = fetched.replace(tzinfo=UTC)
        return ((now or datetime.now(UTC)) - fetched).total_seconds()


class FetchState:
    """Reads and batched writes of ``fetch_state`` (and of the "seen" marks a 304 leaves)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failed_flushes = 0  # in a row
        self.last_error: StoreError | None = None
        self.rows_touched = 0
        self._records: dict[str, FetchRecord] = {}
        self._touches: dict[str, str] = {}  # url -> when it was seen unchanged
        self._touch_tables: list[str] | None = None
        self._last_flush = time.monotonic()

    @property
    def pending(self) -> int:
        return len(self._records) + len(self._touches)

    def get(self, url: str) -> FetchRecord | None:
        """The latest record of ``url`` (one not written yet first); ``StoreError`` on failure."""
        if (pending := self._records.get(url)) is not None:
            return pending
        try:
            row = self.store.conn.execute(_SELECT, (STORE_ERROR, url)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.store.config.path}: {exc}") from exc
        if row is None:
            return None
        url, status, etag, last_modified, content_hash, fetched_at, run_id, trusted = row
        return FetchRecord(
            url, status, etag, last_modified, content_hash, fetched_at, run_id, bool(trusted)
        )

    def record(self, record: FetchRecord) -> None:
        """Buffer the state of one fetch (it replaces the stored one at the next flush)."""
        self._records[record.url] = record

    def touch(self, urls: Iterable[str], seen_at: str) -> None:
        """Buffer "seen unchanged at ``seen_at``" for the item rows whose ``url`` is in ``urls``."""
        for url in urls:
            self._touches[url] = seen_at

    def drop_records(self) -> None:
        """Forget the buffered fetch states (the next crawl fetches those URLs in full)."""
        if self._records:
            logger.warning(f"fetch state of {len(self._records)} URLs dropped: items not saved")
            self._records = {}

    def flush_due(self) -> bool:
        """A full batch, or a batch older than the store's interval (only time after a failure)."""
        if not self.pending:
            return False
        config = self.store.config
        waited = time.monotonic() - self._last_flush >= config.batch_seconds
        return waited or (self.pending >= config.batch_size and not self.failed_flushes)

    def flush(self) -> bool:
        """Write the buffer in one transaction; on failure keep it for the next flush."""
        self._last_flush = time.monotonic()
        if not self.pending:
            return True
        try:
            self.rows_touched += self._write()
        except (sqlite3.Error, StoreError) as exc:
            self.failed_flushes += 1
            self.last_error = exc if isinstance(exc, StoreError) else StoreError(str(exc))
            log = logger.warning if self.failed_flushes == 1 else logger.debug
            log(f"fetch state not written, {self.pending} kept for retry: {self.last_error}")
            return False
        self._records, self._touches, self.failed_flushes = {}, {}, 0
        return True

    def _write(self) -> int:
        conn, run = self.store.conn, self.store.run_id
        records = [
            (r.url, r.status, r.etag, r.last_modified, r.content_hash, r.fetched_at, r.run_id)
            for r in self._records.values()
        ]
        touches = [(seen, run, url) for url, seen in self._touches.items()]
        tables = self._tables(conn) if touches else []
        touched = 0
        with transaction(conn):
            conn.executemany(_UPSERT, records)
            for table in tables:
                cursor = conn.executemany(
                    f"UPDATE {quote(table)} SET last_seen_at = ?,"
                    " last_run_id = coalesce(?, last_run_id) WHERE url = ?",
                    touches,
                )
                touched += max(cursor.rowcount, 0)
        return touched

    def _tables(self, conn: sqlite3.Connection) -> list[str]:
        """Item tables with a ``url`` column, each given an index on it (found once per run)."""
        if self._touch_tables is None:
            names = [
                str(row[0])
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if row[0] not in CORE_TABLES and not str(row[0]).startswith("sqlite_")
            ]
            tables = [name for name in names if _columns(conn, name) >= _TOUCHABLE]
            with transaction(conn):
                for table in tables:
                    if not _has_url_index(conn, table):
                        # not derived from the item class: only our UPDATE … WHERE url needs it
                        conn.execute(
                            f"CREATE INDEX IF NOT EXISTS {quote(table + '_url')}"
                            f" ON {quote(table)} (url)"
                        )
            self._touch_tables = tables
        return self._touch_tables


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({quote(table)})")}


def _has_url_index(conn: sqlite3.Connection, table: str) -> bool:
    for index in conn.execute(f"PRAGMA index_list({quote(table)})").fetchall():
        first = conn.execute(f"PRAGMA index_info({quote(str(index[1]))})").fetchone()
        if first is not None and first[2] == "url":
            return True
    return False
