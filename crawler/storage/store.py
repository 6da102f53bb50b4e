"""``Store``: the SQLite file behind a crawl — its connection, batched writes, and a few reads.

Settings (read by ``StoreConfig.from_settings``): ``SQLITE_ENABLED``, ``SQLITE_PATH``,
``SQLITE_BATCH_SIZE``, ``SQLITE_BATCH_SECONDS``, ``SQLITE_BUSY_TIMEOUT``, ``SQLITE_SYNCHRONOUS``.
Items and rejects are buffered and written in one ``BEGIN IMMEDIATE`` transaction per batch; a
batch that fails is rolled back and kept for the next flush, so nothing collected is dropped.

A file removed or replaced under an open connection keeps taking writes that no one will ever
see, and leaves a ``-wal`` that the next open would replay into whatever file is then at the
path. So each flush compares the files at the path with the ones opened; when they differ, the
open database is copied to ``<path>.recovered-<run>.sqlite`` beside it, the rest of the run is
written there, and ``replaced`` tells the crawl to stop with ``store_error``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured

from crawler.atomicfile import fsync_dir, part_path
from crawler.storage.inferred import InferredTable, Record, make_record
from crawler.storage.liveness import KILLED, this_host
from crawler.storage.schema import ItemTable, migrate, quote, to_json, transaction

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from scrapy.settings import BaseSettings
    from scrapy.statscollectors import StatsCollector

    from crawler.itemtables import Placement
    from crawler.stats import RunCounts
    from crawler.storage.quality import RunQuality

logger = logging.getLogger(__name__)

ITEMS_WRITTEN = "sqlite/items_written"
REJECTS_WRITTEN = "sqlite/rejects_written"
BATCHES = "sqlite/batches"
WRITE_ERRORS = "sqlite/write_errors"
UNSAVED_ITEMS = "sqlite/unsaved_items"
UNSAVED_REJECTS = "sqlite/unsaved_rejects"
UNPLACED_ITEMS = "sqlite/unplaced_items"  # items no table could take, kept in unplaced_items
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
_RUN_JSON = ("arguments", "settings", "stats")
_COMPANIONS = ("", "-wal", "-shm")  # the database file and the files SQLite keeps beside it
_INSERT_UNPLACED = (
    "INSERT INTO unplaced_items (run_id, spider, item_type, json, reason, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_REJECT = (
    "INSERT INTO rejects (run_id, item_type, item, reason, url, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


class StoreError(Exception):
    """The store cannot be opened or written; the message is ``<path>: <reason>``."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class StoreConfig:
    path: Path
    batch_size: int = 500
    batch_seconds: float = 2.0
    busy_timeout: float = 30.0
    synchronous: str = "NORMAL"

    def __post_init__(self) -> None:
        if self.synchronous not in SYNCHRONOUS_MODES:
            modes = "|".join(SYNCHRONOUS_MODES)
            raise ValueError(f"SQLITE_SYNCHRONOUS must be {modes}, not {self.synchronous!r}")
        if not str(self.path):
            raise ValueError("SQLITE_PATH is empty")
        if self.batch_size < 1:
            raise ValueError(f"SQLITE_BATCH_SIZE must be at least 1, not {self.batch_size}")
        if self.batch_seconds <= 0 or self.busy_timeout < 0:
            raise ValueError("SQLITE_BATCH_SECONDS must be > 0 and SQLITE_BUSY_TIMEOUT >= 0")

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> StoreConfig:
        if not settings.getbool("SQLITE_ENABLED"):
            raise NotConfigured("SQLITE_ENABLED is off")
        return cls(
            path=Path(str(settings.get("SQLITE_PATH") or "")),
            batch_size=settings.getint("SQLITE_BATCH_SIZE", 500),
            batch_seconds=settings.getfloat("SQLITE_BATCH_SECONDS", 2.0),
            busy_timeout=settings.getfloat("SQLITE_BUSY_TIMEOUT", 30.0),
            synchronous=str(settings.get("SQLITE_SYNCHRONOUS") or "NORMAL").strip().upper(),
        )


@dataclass
class _Batch:
    items: list[tuple[ItemTable, tuple[Any, ...], str, str]] = field(default_factory=list)
    rejects: list[tuple[str, str, str, str | None, str]] = field(default_factory=list)
    records: list[tuple[str, Record]] = field(default_factory=list)  # schema-less: table, record
    unplaced: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items) + len(self.rejects) + len(self.records) + len(self.unplaced)

    @property
    def stored(self) -> int:
        return len(self.items) + len(self.records)


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # mkdir's word for "a file is in the way"
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(path.parent)) from None


def _file_id(path: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path``, None when nothing is there."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return info.st_dev, info.st_ino


def _companion(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _reason(exc: BaseException, path: Path) -> str:
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return f"{reason}: {exc.filename}" if exc.filename not in (None, str(path)) else reason
    parent = path.parent if str(path.parent) else Path()
    hint = "" if os.access(parent, os.W_OK) else f" (directory {parent} is not writable)"
    return f"{exc}{hint}"


class Store:
    """One SQLite connection with a write buffer; shared by the components of one crawl."""

    def __init__(self, config: StoreConfig, stats: StatsCollector | None = None) -> None:
        self.config = config
        self.stats = stats
        self.run_id: int | None = None
        self.open_error: StoreError | None = None
        self.failed_flushes = 0  # in a row
        self.last_error: StoreError | None = None
        # set when the file at config.path is no longer the one opened; the crawl must stop
        self.replaced: StoreError | None = None
        self.path = config.path  # the file written to: a recovery file once replaced is set
        self._conn: sqlite3.Connection | None = None
        self._opened: dict[str, tuple[int, int] | None] = {}  # suffix -> file id at open
        self._unsaved: Path | None = None  # recovery file that could not be written yet
        self._items_written = 0
        self._pending = _Batch()
        self._ready: set[ItemTable] = set()  # item tables checked on this connection
        # the clocks: monotonic seconds for batch timing, UTC ISO text for the rows' timestamps
        self.clock: Callable[[], float] = time.monotonic
        self.now: Callable[[], str] = utc_now
        self._last_flush = self.clock()
        self._holds = 0

    # --- connection -------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._conn is not None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.config.path}: store is not open")
        return self._conn

    def open(self) -> None:
        """Connect, set the pragmas and migrate; idempotent. Raises ``StoreError``."""
        if self._conn is not None:
            return
        if self.open_error is not None:
            raise self.open_error
        path = self.config.path
        try:
            _make_parent(path)
            conn = self._connect(path)
        except (OSError, sqlite3.Error) as exc:
            self.open_error = self._error(exc)
            raise self.open_error from exc
        self._conn, self._last_flush, self.path = conn, self.clock(), path
        # WAL mode and the migration have made the -wal and -shm files exist
        self._opened = {suffix: _file_id(_companion(path, suffix)) for suffix in _COMPANIONS}

    def _connect(self, path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=self.config.busy_timeout, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.config.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.config.synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def hold(self) -> None:
        """Register one more user; the store closes when the last one calls ``release``."""
        self._holds += 1

    def release(self) -> None:
        self._holds -= 1
        if self._holds <= 0:
            self.close()

    def close(self) -> None:
        """Flush a last time, report what could not be saved, and disconnect."""
        if self._conn is not None:
            self.check_path()
        if self._pending and self._conn is not None:
            self.flush()
        items, rejects = self._pending.stored, len(self._pending.rejects)
        if items or rejects:
            reason = self.open_error or self.last_error or f"{self.config.path}: store not open"
            logger.error(f"SQLite store: {items} items and {rejects} rejects not saved: {reason}")
            self._set_stat(UNSAVED_ITEMS, items)
            self._set_stat(UNSAVED_REJECTS, rejects)
            self._pending = _Batch()  # reported once; a second close() stays quiet
        if self._conn is not None:
            saved = self._unsaved is not None and self._save_at_close(self._unsaved)
            self._conn.close()
            self._conn = None
            if saved:
                self._remove_own_logs()

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- batched writes ---------------------------------------------------------------------
    @property
    def pending_items(self) -> int:
        return self._pending.stored

    @property
    def pending_rejects(self) -> int:
        return len(self._pending.rejects)

    def add_item(
        self,
        item_cls: type,
        values: Mapping[str, Any],
        placement: Placement | None = None,
        row_key: str | None = None,
    ) -> None:
        """Buffer one item of a declared class (in its ``placement``'s table: its ``table`` and
        ``key`` without one); ``TypeError`` if it cannot be stored so."""
        if placement is None or placement.fields is None:
            table = ItemTable.for_class(item_cls)
        else:
            table = ItemTable.declared(
                placement.table, placement.fields, placement.key, item_cls.__name__
            )
        row, row_hash = table.row(values, row_key)
        self._pending.items.append((table, row, row_hash, self.now()))

    def add_record(self, table: str, values: Mapping[str, Any], row_key: str) -> None:
        """Buffer one schema-less item for ``table``, whose columns follow its keys (see
        ``crawler.storage.inferred``); ``row_key`` identifies its row."""
        self._pending.records.append((table, make_record(values, row_key, self.now())))

    def add_placed(
        self,
        type_name: str,
        values: Mapping[str, Any],
        placement: Placement,
        row_key: str,
        seen_at: str | None = None,
    ) -> None:
        """Buffer one item known by its values and placement, not by its class (``scrapy ingest``
        gets them from a Redis stream), seen at ``seen_at``: as ``add_item`` for declared fields
        (``TypeError`` when they cannot be stored so), as ``add_record`` otherwise."""
        seen = seen_at or self.now()
        if placement.fields is None:
            self._pending.records.append((placement.table, make_record(values, row_key, seen)))
            return
        table = ItemTable.declared(placement.table, placement.fields, placement.key, type_name)
        row, row_hash = table.row(values, row_key)
        self._pending.items.append((table, row, row_hash, seen))

    def record_worker(self, run_id: int, worker: int, figures: Mapping[str, Any]) -> None:
        """Insert or update the ``run_workers`` row of a process on any host (``scrapy ingest``
        records the Redis workers of its run): ``host``, ``pid``, ``started_at``,
        ``heartbeat_at``, ``pages``, ``items``, and when it is over ``finished_at``,
        ``finish_reason`` and ``exit_status``."""
        names = ("host", "pid", "started_at", "heartbeat_at", "pages", "items", "finished_at",
                 "finish_reason", "exit_status")  # fmt: skip
        row = tuple(figures.get(name) for name in names)
        self._execute(
            "INSERT INTO run_workers (run_id, worker, host, pid, started_at, heartbeat_at, pages,"
            " items, finished_at, finish_reason, exit_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?) ON CONFLICT (run_id, worker) DO UPDATE SET host = excluded.host,"
            " pid = excluded.pid, heartbeat_at = excluded.heartbeat_at, pages = excluded.pages,"
            " items = excluded.items, finished_at = excluded.finished_at,"
            " finish_reason = excluded.finish_reason, exit_status = excluded.exit_status",
            [(run_id, worker, *row)],
        )

    def add_unplaced(self, spider: str, item_type: str, item: Any, reason: str) -> None:
        """Buffer an item no table can take: kept as JSON in ``unplaced_items`` with why."""
        try:
            text = to_json(item)
        except (TypeError, ValueError, RecursionError) as exc:
            text = json.dumps({"repr": repr(item)[:100_000], "json_error": str(exc)})
        text = text.encode("utf-8", "replace").decode("utf-8")
        self._pending.unplaced.append((spider, item_type, text, reason, self.now()))

    def add_reject(self, item_type: str, item: Mapping[str, Any], reason: str) -> None:
        url = item.get("url")
        record = (item_type, to_json(item), reason, None if url is None else str(url), self.now())
        self._pending.rejects.append(record)

    def flush_due(self) -> bool:
        """A full batch, or one waiting for ``batch_seconds``; after a failure, time only."""
        if not self._pending:
            return False
        waited = self.clock() - self._last_flush >= self.config.batch_seconds
        full = len(self._pending) >= self.config.batch_size and not self.failed_flushes
        return waited or full

    def flush(self) -> bool:
        """Write the buffer in one transaction; on failure keep it for the next flush."""
        self._last_flush = self.clock()
        self.check_path()
        batch = self._pending
        if not batch:
            return True
        try:
            self._write(batch)
        except (sqlite3.Error, StoreError) as exc:
            self.failed_flushes += 1
            self.last_error = self._error(exc)
            self._inc_stat(WRITE_ERRORS)
            log = logger.warning if self.failed_flushes == 1 else logger.debug
            log(f"SQLite write failed, {len(batch)} records kept for retry: {self.last_error}")
            return False
        self._pending, self.failed_flushes = _Batch(), 0
        self._items_written += batch.stored
        self._inc_stat(BATCHES)
        self._inc_stat(ITEMS_WRITTEN, batch.stored)
        self._inc_stat(UNPLACED_ITEMS, len(batch.unplaced))
        self._inc_stat(REJECTS_WRITTEN, len(batch.rejects))
        return True

    def _write(self, batch: _Batch) -> None:
        conn = self.conn
        tables = list(dict.fromkeys(t for t, *_ in batch.items))  # one per class, in order
        for table in tables:
            if table not in self._ready:
                table.ensure(conn)
                self._ready.add(table)
        run = self.run_id
        with transaction(conn):
            for table in tables:
                rows = [
                    (*row, run, run, seen, seen, seen, row_hash)
                    for t, row, row_hash, seen in batch.items
                    if t == table
                ]
                conn.executemany(table.upsert_sql, rows)
            records: dict[str, list[Record]] = {}
            for name, record in batch.records:
                records.setdefault(name, []).append(record)
            for name, group in records.items():
                InferredTable.load(conn, name).write(conn, group, run)
            conn.executemany(_INSERT_REJECT, [(run, *r) for r in batch.rejects])
            conn.executemany(_INSERT_UNPLACED, [(run, *u) for u in batch.unplaced])

    def _error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        return StoreError(f"{self.path}: {_reason(exc, self.path)}")

    def _inc_stat(self, key: str, count: int = 1) -> None:
        if self.stats is not None and count:
            self.stats.inc_value(key, count)

    def _set_stat(self, key: str, value: int) -> None:
        if self.stats is not None:
            self.stats.set_value(key, value)

    # --- the file at the path ---------------------------------------------------------------
    def check_path(self) -> bool:
        """False once the files at ``config.path`` are not the ones opened (see the module doc).

        The first time, the open database is copied beside the path and the connection moves to
        the copy (``path``); ``replaced`` holds what happened, and one ERROR line says it.
        """
        if self.replaced is not None or self._conn is None:
            return self.replaced is None
        change = self._change()
        if change is None:
            return True
        target = self._recovery_path()
        self.replaced = StoreError(f"{self.config.path} was removed or replaced ({change})")
        try:
            self._move_to(target)
        except (OSError, sqlite3.Error) as exc:
            self._unsaved = target  # keep writing into the removed file; try again at close
            logger.error(
                f"SQLite store {self.config.path} was removed or replaced during the crawl"
                f" ({change}): copying it to {target} failed ({_reason(exc, target)}); the"
                f" {self._items_written} items this run wrote are lost unless the copy works"
                " when the crawl closes"
            )
            return False
        logger.error(
            f"SQLite store {self.config.path} was removed or replaced during the crawl"
            f" ({change}): nothing collected is lost: the store as it was, with the"
            f" {self._items_written} items this run wrote, is saved to {target}, and the rest"
            " of the run is written there"
        )
        return False

    def _change(self) -> str | None:
        """How the files at the path differ from the ones opened; None when they do not."""
        path = self.config.path
        for suffix in ("", "-wal"):
            opened = self._opened.get(suffix)
            if opened is None:
                continue  # not there at open (another journal mode): nothing to compare
            now = _file_id(_companion(path, suffix))
            if now == opened:
                continue
            name = _companion(path, suffix).name
            there = "nothing is there now" if now is None else f"{name} is now inode {now[1]}"
            return f"{name} opened as inode {opened[1]}; {there}"
        return None

    def _recovery_path(self) -> Path:
        path = self.config.path
        run = self.run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = path.with_name(f"{path.name}.recovered-{run}.sqlite")
        number = 1
        while target.exists():
            number += 1
            target = path.with_name(f"{path.name}.recovered-{run}-{number}.sqlite")
        return target

    def _move_to(self, target: Path) -> None:
        """Copy the open database to ``target`` and go on there; drop the removed file's logs."""
        old = self.conn
        self._copy(old, target)
        self._conn, self.path, self._ready = self._connect(target), target, set()
        old.close()  # SQLite neither checkpoints nor deletes the logs of a moved file
        self._remove_own_logs()

    def _copy(self, source: sqlite3.Connection, target: Path) -> None:
        """``target`` complete or not at all: a backup into a part file, renamed into place."""
        _make_parent(target)
        part = part_path(target)
        try:
            copy = sqlite3.connect(part)
            try:
                source.backup(copy)
            finally:
                copy.close()
            part.replace(target)
        finally:  # nothing of a failed copy stays behind
            for suffix in (*_COMPANIONS, "-journal"):
                _companion(part, suffix).unlink(missing_ok=True)
        fsync_dir(target.parent)

    def _remove_own_logs(self) -> None:
        """Delete the -wal and -shm of the removed file, never ones that belong to another."""
        for suffix in ("-wal", "-shm"):
            log = _companion(self.config.path, suffix)
            if self._opened.get(suffix) is not None and _file_id(log) == self._opened[suffix]:
                log.unlink(missing_ok=True)

    def _save_at_close(self, target: Path) -> bool:
        """The second chance of a copy that failed when the change was found."""
        self._unsaved = None
        try:
            self._copy(self.conn, target)
        except (OSError, sqlite3.Error) as exc:
            logger.error(
                f"SQLite store: copying the removed {self.config.path} to {target} failed"
                f" again ({_reason(exc, target)}): the {self._items_written} items this run"
                " wrote are lost with it"
            )
            return False
        logger.error(f"SQLite store: the removed {self.config.path} is saved to {target} after all")
        return True

    # --- runs -------------------------------------------------------------------------------
    def start_run(
        self,
        spider: str,
        *,
        arguments: Mapping[str, Any],
        profile: str | None,
        settings: Mapping[str, Any],
        job_id: int | None = None,
    ) -> int:
        """Insert the ``runs`` row of this crawl (of frontier job ``job_id``, if any); later item
        rows carry its id."""
        values = (spider, to_json(arguments), profile, to_json(settings), self.now(), job_id)
        try:
            with transaction(self.conn):
                cursor = self.conn.execute(
                    "INSERT INTO runs (spider, arguments, profile, settings, started_at, job_id)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    values,
                )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        assert cursor.lastrowid is not None
        self.run_id = cursor.lastrowid
        return self.run_id

    def finish_run(
        self,
        run_id: int,
        *,
        reason: str,
        counts: RunCounts,
        exit_status: int,
        stats: Mapping[str, Any],
        failure: str | None = None,
        quality: RunQuality | None = None,
    ) -> None:
        """Close the run's row: finish time and reason, counts, verdict, why it failed, stats;
        with ``quality``, its checks' results and a process's field coverage, in the same
        transaction."""
        values = (
            self.now(), reason, *counts.as_dict().values(), exit_status, failure, to_json(stats)
        )  # fmt: skip
        try:
            with transaction(self.conn):
                self.conn.execute(
                    "UPDATE runs SET finished_at = ?, finish_reason = ?, pages = ?, items = ?,"
                    " rejects = ?, duplicates = ?, errors = ?, exit_status = ?,"
                    " failure = COALESCE(?, failure), stats = ? WHERE id = ?",
                    (*values, run_id),
                )
                if quality is not None:
                    quality.write(self.conn, run_id)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def set_run_job(self, run_id: int, job_id: int) -> None:
        """Record which frontier job the run works on (``runs.job_id``)."""
        try:
            with transaction(self.conn):
                self.conn.execute("UPDATE runs SET job_id = ? WHERE id = ?", (job_id, run_id))
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def run_workers(self, run_id: int) -> list[dict[str, Any]]:
        """The ``run_workers`` rows of a run (one per crawl process), by worker; stats decoded."""
        sql = "SELECT * FROM run_workers WHERE run_id = ? ORDER BY worker"
        return [_run_dict(row) for row in self._query(sql, (run_id,))]

    # --- the processes of a run (run_workers; see crawler.storage.liveness) -------------------
    def start_worker(self, run_id: int, worker: int) -> tuple[int, int]:
        """Record this process as worker ``worker`` of run ``run_id`` (a restarted worker's row
        is replaced): host, pid, start and first heartbeat. Returns the pages and items the
        row held (a restarted worker's earlier process: its figures carry on)."""
        now = self.now()
        before = self.conn.execute(
            "SELECT pages, items FROM run_workers WHERE run_id = ? AND worker = ?",
            (run_id, worker),
        ).fetchone()
        self._execute(
            "INSERT INTO run_workers (run_id, worker, host, pid, started_at, heartbeat_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, worker) DO UPDATE SET"
            " host = excluded.host, pid = excluded.pid, started_at = excluded.started_at,"
            " heartbeat_at = excluded.heartbeat_at, finished_at = NULL, finish_reason = NULL,"
            " pages = NULL, items = NULL, exit_status = NULL, stats = NULL",
            [(run_id, worker, this_host(), os.getpid(), now, now)],
        )
        return (int(before[0] or 0), int(before[1] or 0)) if before else (0, 0)

    def heartbeat(self, run_id: int, worker: int, pages: int, items: int) -> None:
        """Say that this worker is alive, with its figures so far. A worker someone marked
        ``killed`` while it was only silent (suspended, swapping) comes back, and its run too."""
        now = self.now()
        try:
            with transaction(self.conn):
                self.conn.execute(
                    "UPDATE run_workers SET heartbeat_at = ?, pages = ?, items = ?,"
                    " finished_at = CASE WHEN finish_reason = ? THEN NULL ELSE finished_at END,"
                    " finish_reason = CASE WHEN finish_reason = ? THEN NULL ELSE finish_reason END"
                    " WHERE run_id = ? AND worker = ?",
                    (now, pages, items, KILLED, KILLED, run_id, worker),
                )
                self.conn.execute(
                    "UPDATE runs SET finished_at = NULL, finish_reason = NULL, exit_status = NULL,"
                    " failure = NULL WHERE id = ? AND finish_reason = ?",
                    (run_id, KILLED),
                )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def finish_worker(
        self,
        run_id: int,
        worker: int,
        *,
        reason: str,
        counts: RunCounts,
        exit_status: int,
        stats: Mapping[str, Any],
        quality: RunQuality | None = None,
    ) -> None:
        """Close this worker's row: finish time and reason, pages, items, verdict, stats; with
        ``quality``, the worker's field coverage in the same transaction."""
        try:
            with transaction(self.conn):
                self.conn.execute(
                    "UPDATE run_workers SET finished_at = ?, heartbeat_at = ?, finish_reason = ?,"
                    " pages = ?, items = ?, exit_status = ?, stats = ?"
                    " WHERE run_id = ? AND worker = ?",
                    (self.now(), self.now(), reason, counts.pages, counts.items, exit_status,
                     to_json(stats), run_id, worker),
                )  # fmt: skip
                if quality is not None:
                    quality.write(self.conn, run_id)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _execute(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            with transaction(self.conn):
                self.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    # --- reads ------------------------------------------------------------------------------
    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs, newest first; JSON columns decoded."""
        sql = "SELECT * FROM runs ORDER BY id DESC LIMIT ?"
        return [_run_dict(row) for row in self._query(sql, (limit,))]

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run_dict(rows[0]) if rows else None

    def count(self, table: str) -> int:
        return int(self._query(f"SELECT count(*) FROM {quote(table)}")[0][0])

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        """Every row of ``table`` in insertion order, as dicts of stored values."""
        sql = f"SELECT * FROM {quote(table)} ORDER BY rowid"
        try:
            for row in self.conn.execute(sql):
                yield dict(row)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc


def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
    run = dict(row)
    for name in _RUN_JSON:
        if run.get(name) is not None:
            run[name] = json.loads(run[name])
    return run


def open_store(path: str | Path, **options: Any) -> Store:
    """An open ``Store`` on ``path`` (created and migrated if needed), for commands and tests."""
    store = Store(StoreConfig(Path(path), **options))
    store.open()
    return store
