"""``FetchState``: the store's ``fetch_state`` table, one row per spider (``scope``) and URL.

Each fetch leaves the URL's status, ETag, Last-Modified, body hash, time and run id; the next
crawl of the same spider reads them to send conditional requests and to skip URLs fetched
recently (see ``crawler.middlewares.conditional``). Writes are buffered and committed in one
short ``BEGIN IMMEDIATE`` transaction per batch on the crawl's shared ``Store`` connection,
never across reactor turns; a batch that fails is kept for the next flush.

State is scoped: a spider never reads what another spider recorded, since another spider's
validators would answer its pages with 304s for items it never stored. A fetch that stored an
item is linked to that row (``item_table``, ``item_url``); the state is *backed* only while the
row is still there, and a 304 marks only that table's rows seen.

A row is *trusted* only when the run that wrote it has finished (``runs.finished_at`` set, and
not with the ``store_error`` or ``killed`` reason): a crawl killed before its items were written
must not leave validators behind that would make the next crawl take those pages as unchanged.
Nor does a run whose data failed a check across runs (``quality_failed``): the next run fetches
those pages in full and judges them again, instead of taking them as unchanged with 304s.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crawler.stats import QUALITY_FAILED
from crawler.storage import STORE_ERROR, StoreError
from crawler.storage.liveness import KILLED
from crawler.storage.schema import CORE_TABLES, quote, transaction

if TYPE_CHECKING:
    from collections.abc import Iterable

    from crawler.storage import Store

logger = logging.getLogger(__name__)

_SELECT = (
    "SELECT f.url, f.status, f.etag, f.last_modified, f.content_hash, f.fetched_at, f.run_id,"
    " r.finished_at IS NOT NULL AND COALESCE(r.finish_reason, '') NOT IN (?, ?, ?) AS trusted,"
    " f.item_table, f.item_url"
    " FROM fetch_state f LEFT JOIN runs r ON r.id = f.run_id WHERE f.scope = ? AND f.url = ?"
)
_UPSERT = (
    "INSERT INTO fetch_state (scope, url, status, etag, last_modified, content_hash, fetched_at,"
    " run_id, item_table, item_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (scope, url) DO UPDATE SET status = excluded.status, etag = excluded.etag,"
    " last_modified = excluded.last_modified, content_hash = excluded.content_hash,"
    " fetched_at = excluded.fetched_at, run_id = excluded.run_id,"
    " item_table = excluded.item_table, item_url = excluded.item_url"
)
_LINK = "UPDATE fetch_state SET item_table = ?, item_url = ? WHERE scope = ? AND url = ?"
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
    item_table: str | None = None  # the table of the item this fetch stored (None: no item)
    item_url: str | None = None  # that item's `url`, by which a 304 marks its row seen

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
    """Reads and batched writes of one spider's ``fetch_state`` rows (and of 304 "seen" marks).

    ``scope`` is the spider's name: rows recorded under another scope are never read.
    """

    def __init__(self, store: Store, scope: str = "") -> None:
        self.store = store
        self.scope = scope
        self.failed_flushes = 0  # in a row
        self.last_error: StoreError | None = None
        self.rows_touched = 0
        self._records: dict[str, FetchRecord] = {}
        self._links: dict[str, tuple[str, str | None]] = {}  # url -> (item table, item url)
        self._touches: dict[tuple[str, str], str] = {}  # (table, url) -> when seen unchanged
        self._touchable: set[str] = set()  # item tables with a url column (and an index on it)
        self._last_flush = time.monotonic()

    @property
    def pending(self) -> int:
        return len(self._records) + len(self._links) + len(self._touches)

    def get(self, url: str) -> FetchRecord | None:
        """The latest record of ``url`` in this scope (one not written yet first).

        Raises ``StoreError`` when the store cannot be read.
        """
        record = self._records.get(url)
        if record is None:
            try:
                row = self.store.conn.execute(
                    _SELECT, (STORE_ERROR, KILLED, QUALITY_FAILED, self.scope, url)
                ).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.store.config.path}: {exc}") from exc
            if row is None:
                return None
            record = FetchRecord(
                url=row[0], status=row[1], etag=row[2], last_modified=row[3],
                content_hash=row[4], fetched_at=row[5], run_id=row[6], trusted=bool(row[7]),
                item_table=row[8], item_url=row[9],
            )  # fmt: skip
        if (link := self._links.get(url)) is not None:
            record = replace(record, item_table=link[0], item_url=link[1])
        return record

    def backed(self, record: FetchRecord) -> bool:
        """Whether the item row the fetch stored is still in its table (or it stored none).

        Only then may a 304 or a ``min_age`` skip stand in for the item; an unreadable table,
        one without a ``url`` column, or an item without a ``url`` count as not backed.
        """
        if record.item_table is None:
            return True
        if record.item_url is None:
            return False
        try:
            if not self._touchable_table(record.item_table):
                return False
            found = self.store.conn.execute(
                f"SELECT 1 FROM {quote(record.item_table)} WHERE url = ? LIMIT 1",
                (record.item_url,),
            ).fetchone()
        except (sqlite3.Error, StoreError) as exc:
            logger.debug(f"fetch state of {record.url} not backed: {exc}")
            return False
        return found is not None

    def record(self, record: FetchRecord) -> None:
        """Buffer the state of one fetch (it replaces the stored one at the next flush)."""
        self._links.pop(record.url, None)  # a new fetch: its own items link it again
        self._records[record.url] = record

    def link(self, url: str, table: str, item_url: str | None) -> None:
        """Buffer "the fetch of ``url`` stored the row of ``table`` whose ``url`` is ``item_url``".

        Call it after ``record`` for that fetch (a link always follows its fetch).
        """
        self._links[url] = (table, item_url)

    def touch(self, table: str, urls: Iterable[str], seen_at: str) -> None:
        """Buffer "seen unchanged at ``seen_at``" for the rows of ``table`` whose ``url`` is in
        ``urls`` (and not marked by this run yet)."""
        for url in urls:
            self._touches[table, url] = seen_at

    def drop_records(self) -> None:
        """Forget the buffered fetch states (the next crawl fetches those URLs in full)."""
        if self._records:
            logger.warning(f"fetch state of {len(self._records)} URLs dropped: items not saved")
            self._records = {}
        self._links = {}

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
        self._records, self._links, self._touches, self.failed_flushes = {}, {}, {}, 0
        return True

    def _write(self) -> int:
        conn, run, scope = self.store.conn, self.store.run_id, self.scope
        records = [
            (scope, r.url, r.status, r.etag, r.last_modified, r.content_hash, r.fetched_at,
             r.run_id, r.item_table, r.item_url)
            for r in self._records.values()
        ]  # fmt: skip
        links = [(table, item_url, scope, url) for url, (table, item_url) in self._links.items()]
        touches: dict[str, list[dict[str, object]]] = {}
        for (table, url), seen in self._touches.items():
            if self._touchable_table(table):
                touches.setdefault(table, []).append({"seen": seen, "run": run, "url": url})
        touched = 0
        with transaction(conn):
            conn.executemany(_UPSERT, records)
            conn.executemany(_LINK, links)  # after the upserts: a link follows its fetch
            for table, rows in touches.items():
                # a row this run already stored or marked is left alone, and not counted twice
                cursor = conn.executemany(
                    f"UPDATE {quote(table)} SET last_seen_at = :seen,"
                    " last_run_id = coalesce(:run, last_run_id)"
                    " WHERE url = :url AND (:run IS NULL OR last_run_id IS NOT :run)",
                    rows,
                )
                touched += max(cursor.rowcount, 0)
        return touched

    def _touchable_table(self, table: str) -> bool:
        """Whether ``table`` is an item table whose rows can be found by ``url``; the first time
        it is, it gets an index on ``url`` (a table found lacking is looked at again next time:
        the crawl may create it)."""
        if table in self._touchable:
            return True
        conn = self.store.conn
        try:
            if table in CORE_TABLES or not _columns(conn, table) >= _TOUCHABLE:
                return False
        except ValueError:  # not a table name we would ever create
            return False
        if not _has_url_index(conn, table):
            # not derived from the item class: only our lookups by url need it
            with transaction(conn):
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {quote(table + '_url')} ON {quote(table)} (url)"
                )
        self._touchable.add(table)
        return True


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({quote(table)})")}


def _has_url_index(conn: sqlite3.Connection, table: str) -> bool:
    for index in conn.execute(f"PRAGMA index_list({quote(table)})").fetchall():
        first = conn.execute(f"PRAGMA index_info({quote(str(index[1]))})").fetchone()
        if first is not None and first[2] == "url":
            return True
    return False
