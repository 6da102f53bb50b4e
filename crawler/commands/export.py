"""``scrapy export TABLE -o FILE``: stream an item table of the store to CSV, JSONL or Parquet.

``scrapy export --failed RUN -o FILE``: the URLs that failed in run RUN (``failed_pages``,
recorded by ``crawler.extensions.snapshots``), distinct, in the order they first failed, one per
line: a seed file that ``scrapy crawl pages -a urls=FILE`` reads back. A run without failures
gives an empty file (a stale list from an earlier export is replaced, never fetched again).

Reads the store read-only (read-write only with ``--changed-since-last-export``, to keep the
cursor), writes to a hidden temporary file beside FILE and renames it into place when complete.
Errors are one line starting ``error:``; exit status 2 for bad input, 1 for a failed export.
Settings: ``SQLITE_PATH`` (default store), ``EXPORT_*``, ``CSV_NEUTRALIZE_FORMULAS``,
``CSV_ENCODING``.
"""

from __future__ import annotations

import codecs
import os
import signal
import sqlite3
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand

from crawler.addon import install_defaults
from crawler.exitcodes import EXIT_INTERRUPTED
from crawler.export import ExportError, ExportUsageError
from crawler.export import cursor as cursors
from crawler.export.atomic import atomic_output
from crawler.export.columns import export_columns, inferred_columns, item_class_for, pick
from crawler.export.config import ExportConfig
from crawler.export.query import RowFilter, parse_since
from crawler.export.stream import (
    FORMATS,
    ExportJob,
    ExportResult,
    format_for,
    require_pyarrow,
    run_export,
)
from crawler.storage.failures import failed_urls, has_failed_pages_table
from crawler.storage.inferred import column_kinds
from crawler.storage.reads import get_run, item_tables, open_readonly, spiders, table_columns
from crawler.storage.store import StoreError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable
    from types import FrameType

    from crawler.export.columns import Column

# Options of a table export, by attribute: --failed writes a URL list and takes none of them.
TABLE_OPTIONS = {
    "format": "--format",
    "spider": "--spider",
    "run": "--run",
    "since": "--since",
    "cursor": "--changed-since-last-export",
    "fields": "--fields",
    "encoding": "--encoding",
    "no_neutralize": "--no-neutralize",
}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: unwind, so the temporary file is removed


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings: ClassVar[dict[str, Any]] = {"LOG_ENABLED": False}

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        install_defaults(self.settings)  # what a crawl would read: SQLITE_PATH, EXPORT_*…

    def syntax(self) -> str:
        return "TABLE -o FILE [options] | --failed RUN -o FILE"

    def short_desc(self) -> str:
        return "Export an item table to CSV, JSON Lines or Parquet, or a run's failed URLs"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        add = parser.add_argument
        add("-o", "--output", metavar="FILE", help="output file, or - for stdout")
        add("-f", "--format", metavar="FORMAT", help="csv, jsonl or parquet (default: from FILE)")
        add("--spider", metavar="NAME", help="rows last seen by runs of this spider")
        add("--run", metavar="ID", help="rows last seen by this run (their last_run_id)")
        add("--since", metavar="DATE", help="rows seen (last_seen_at) at or after DATE (ISO)")
        add(
            "--changed-since-last-export",
            metavar="NAME",
            dest="cursor",
            help="only rows new or changed since the last export under this cursor name",
        )
        add("--fields", metavar="A,B,…", help="columns to export, in this order")
        add("--db", metavar="PATH", help="the store (default: the SQLITE_PATH setting)")
        add(
            "--failed",
            metavar="RUN",
            help="instead of a table: the URLs that failed in run RUN, one per line",
        )
        add("--encoding", metavar="NAME", help="CSV encoding (default: CSV_ENCODING), strict")
        add(
            "--no-neutralize",
            action="store_true",
            help="keep CSV text starting with = + - @ as it is (spreadsheets may run it)",
        )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        started = time.monotonic()
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            summary = self._run(args, opts, started)
        except ExportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            self.exitcode = exc.exit_status
            return
        except KeyboardInterrupt:
            print("error: interrupted; no output was published", file=sys.stderr)
            self.exitcode = EXIT_INTERRUPTED
            return
        finally:
            signal.signal(signal.SIGTERM, previous)
        print(summary, file=sys.stderr)

    def _run(self, args: list[str], opts: argparse.Namespace, started: float) -> str:
        assert self.settings is not None
        if opts.failed is not None:
            return self._export_failed(args, opts, started)
        if len(args) != 1:
            raise ExportUsageError("give one table to export: scrapy export TABLE -o FILE")
        if not opts.output:
            raise ExportUsageError("give the output with -o FILE (or -o - for stdout)")
        config = ExportConfig.from_settings(self.settings)
        fmt = format_for(opts.output, opts.format)
        if fmt not in FORMATS:
            raise ExportUsageError(f"unknown format {fmt!r}: choose {', '.join(FORMATS)}")
        if fmt == "parquet":
            require_pyarrow()
        row_filter = RowFilter(
            spider=opts.spider,
            run_id=_run_id(opts.run),
            since=None if opts.since is None else parse_since(opts.since),
        )
        encoding = _encoding(opts.encoding, fmt, config)
        db = str(opts.db or config.db_path)
        try:
            conn = (
                cursors.open_writable(db, config.busy_timeout)
                if opts.cursor
                else open_readonly(db, config.busy_timeout)
            )
        except StoreError as exc:
            raise ExportError(str(exc)) from None
        try:
            with closing(conn):
                job = ExportJob(
                    table=args[0],
                    columns=tuple(self._columns(conn, args[0], opts.fields, config)),
                    row_filter=_checked(conn, row_filter, db),
                    fmt=fmt,
                    encoding=encoding,
                    neutralize=config.csv_neutralize and not opts.no_neutralize,
                )
                return self._deliver(conn, job, opts, config, started)
        except sqlite3.Error as exc:
            raise ExportError(f"{db}: {exc}") from exc

    def _export_failed(self, args: list[str], opts: argparse.Namespace, started: float) -> str:
        """``--failed RUN``: the run's failed URLs as a seed file."""
        assert self.settings is not None
        if args:
            raise ExportUsageError("give a TABLE or --failed RUN, not both")
        given = [flag for name, flag in TABLE_OPTIONS.items() if getattr(opts, name)]
        if given:
            raise ExportUsageError(f"--failed writes a URL list: {', '.join(given)} is for tables")
        if not opts.output:
            raise ExportUsageError("give the output with -o FILE (or -o - for stdout)")
        run_id = _run_id(opts.failed, "--failed")
        assert run_id is not None
        config = ExportConfig.from_settings(self.settings)
        db = str(opts.db or config.db_path)
        try:
            conn = open_readonly(db, config.busy_timeout)
        except StoreError as exc:
            raise ExportError(str(exc)) from None
        try:
            with closing(conn):
                if get_run(conn, run_id) is None:
                    raise ExportUsageError(f"no run {run_id} in {db} (see `scrapy runs`)")
                if not has_failed_pages_table(conn):
                    raise ExportError(
                        f"{db}: the store is older than failed-page recording (no failed_pages"
                        " table); a crawl with this version upgrades it"
                    )
                count = _write_lines(failed_urls(conn, run_id), opts.output)
        except sqlite3.Error as exc:
            raise ExportError(f"{db}: {exc}") from exc
        where = "stdout" if opts.output == "-" else opts.output
        if not count:
            empty = "" if opts.output == "-" else f": wrote an empty {where}"
            return f"run {run_id} had no failed pages{empty}"
        took = time.monotonic() - started
        return f"exported {count:,} failed URLs of run {run_id} to {where} in {took:.1f} s"

    def _deliver(
        self,
        conn: sqlite3.Connection,
        job: ExportJob,
        opts: argparse.Namespace,
        config: ExportConfig,
        started: float,
    ) -> str:
        """Write and publish the output; then, with a cursor, move the cursor."""
        if not opts.cursor:
            return _summary(_write(conn, job, opts.output, config), opts.output, started)
        cursor = cursors.load(conn, opts.cursor, job.table)
        job = replace(job, row_filter=_after(job.row_filter, cursor), track_changes=True)
        result = _write(conn, job, opts.output, config)
        position = cursors.next_position(
            conn, cursor, result.max_changed_at, config.cursor_inflight_hours
        )
        where = "-" if opts.output == "-" else str(Path(opts.output).resolve())
        cursors.advance(conn, cursor, position, result.rows, where)
        return f"{_summary(result, opts.output, started)} (cursor {opts.cursor!r})"

    def _columns(
        self, conn: sqlite3.Connection, table: str, fields: str | None, config: ExportConfig
    ) -> list[Column]:
        tables = item_tables(conn)
        if table not in tables:
            known = ", ".join(tables) or "none yet"
            raise ExportUsageError(f"no item table {table!r} in the store (tables: {known})")
        item_cls = item_class_for(table, config.item_classes)
        inferred = column_kinds(conn, table)
        if inferred and item_cls is None:
            columns = inferred_columns(table_columns(conn, table), inferred)
        else:
            columns = export_columns(table_columns(conn, table), item_cls)
        if fields is None:
            return columns
        return pick(columns, [name.strip() for name in fields.split(",") if name.strip()])


def _run_id(text: str | None, option: str = "--run") -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ExportUsageError(f"{option} {text!r} is not a run id (a number)") from None


def _write_lines(lines: Iterable[str], output: str) -> int:
    """Write ``lines`` one per line (UTF-8) to ``output`` (published whole) or stdout (``-``)."""
    count = 0
    if output == "-":
        for line in lines:
            sys.stdout.write(f"{line}\n")
            count += 1
        sys.stdout.flush()
        return count
    with atomic_output(Path(output)) as handle:
        for line in lines:
            handle.write(f"{line}\n".encode())
            count += 1
    return count


def _encoding(name: str | None, fmt: str, config: ExportConfig) -> str:
    if name is not None and fmt != "csv":
        raise ExportUsageError(f"--encoding applies to CSV only ({fmt} is always UTF-8 or binary)")
    encoding = name or config.csv_encoding
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ExportUsageError(f"unknown encoding {encoding!r}") from None
    return encoding


def _checked(conn: sqlite3.Connection, row_filter: RowFilter, db: str) -> RowFilter:
    """``row_filter``, if the run and spider it names exist (a typo must not export nothing)."""
    try:
        if row_filter.run_id is not None and get_run(conn, row_filter.run_id) is None:
            raise ExportUsageError(f"no run {row_filter.run_id} in {db} (see `scrapy runs`)")
        if row_filter.spider is not None and row_filter.spider not in (names := spiders(conn)):
            known = ", ".join(names) or "none"
            raise ExportUsageError(f"no runs of spider {row_filter.spider!r} in {db} ({known})")
    except StoreError as exc:
        raise ExportError(f"{db}: {exc}") from None
    return row_filter


def _after(row_filter: RowFilter, cursor: cursors.Cursor) -> RowFilter:
    return replace(row_filter, changed_after=cursor.last_exported_at)


def _write(
    conn: sqlite3.Connection, job: ExportJob, output: str, config: ExportConfig
) -> ExportResult:
    if output != "-":
        with atomic_output(Path(output)) as handle:
            return run_export(conn, job, handle, config, label=f"{job.table} → {output}")
    stdout: IO[bytes] = sys.stdout.buffer
    try:
        result = run_export(conn, job, stdout, config, label=job.table)
        stdout.flush()
    except BrokenPipeError:
        # the reader went away: silence the second failure Python would report at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise ExportError("stdout was closed before the export finished") from None
    return result


def _summary(result: ExportResult, output: str, started: float) -> str:
    where = "stdout" if output == "-" else output
    return f"exported {result.rows:,} rows to {where} in {time.monotonic() - started:.1f} s"
