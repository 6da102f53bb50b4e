"""Run one export: read the selected rows in chunks and hand them to a format writer.

Reads happen inside one read transaction, so the rows, their count and the cursor position
come from the same snapshot of the store while crawls keep writing. At most one chunk
(``EXPORT_BATCH_ROWS``) of rows is held in Python at a time, plus one Parquet row group.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, Protocol

from crawler.export import ExportError, ExportUsageError, query
from crawler.export.progress import progress_bar

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from crawler.export.columns import Column
    from crawler.export.config import ExportConfig
    from crawler.export.query import RowFilter

FORMATS = ("csv", "jsonl", "parquet")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
PARQUET_MISSING = "Parquet export needs pyarrow: pip install 'crawler[parquet]'"


class RowWriter(Protocol):
    def write(self, rows: Sequence[Sequence[Any]], first: int) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(frozen=True)
class ExportJob:
    table: str
    columns: tuple[Column, ...]
    row_filter: RowFilter
    fmt: str
    encoding: str = "utf-8"
    neutralize: bool = True
    track_changes: bool = False  # find the latest changed_at (for an export cursor)


@dataclass(frozen=True)
class ExportResult:
    rows: int
    max_changed_at: str | None  # the latest changed_at exported (with ``track_changes``)


def format_for(output: str, given: str | None) -> str:
    """``--format``, or the one the output's extension names."""
    if given:
        return given
    for extension, fmt in EXTENSIONS.items():
        if output.lower().endswith(extension):
            return fmt
    shown = "stdout" if output == "-" else repr(output)
    raise ExportUsageError(f"cannot tell the format of {shown}: give --format csv|jsonl|parquet")


def require_pyarrow() -> None:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ExportUsageError(PARQUET_MISSING) from None


def chunks(cursor: sqlite3.Cursor, size: int) -> Iterator[list[Any]]:
    while rows := cursor.fetchmany(size):
        yield rows


def make_writer(
    conn: sqlite3.Connection, job: ExportJob, handle: IO[bytes], config: ExportConfig
) -> RowWriter:
    if job.fmt == "csv":
        from crawler.export.csv_writer import CsvWriter

        return CsvWriter(handle, job.columns, encoding=job.encoding, neutralize=job.neutralize)
    if job.fmt == "jsonl":
        from crawler.export.jsonl_writer import JsonlWriter

        return JsonlWriter(handle, job.columns)
    from crawler.export.columns import JsonValue
    from crawler.export.parquet_writer import ParquetWriter, decimal_type, json_type

    decimals = {}
    for column in job.columns:
        if column.kind is JsonValue:
            values = query.column_values(conn, job.table, column.name, job.row_filter)
            decimals[column.name] = json_type(values)
        if column.kind is Decimal:
            digits, places = query.decimal_digits(conn, job.table, column.name, job.row_filter)
            scale = places if column.scale is None else column.scale
            decimals[column.name] = decimal_type(digits, scale)
    return ParquetWriter(
        handle,
        job.columns,
        decimals=decimals,
        row_group_rows=config.parquet_row_group_rows,
        compression=config.parquet_compression,
    )


def run_export(
    conn: sqlite3.Connection,
    job: ExportJob,
    handle: IO[bytes],
    config: ExportConfig,
    *,
    label: str = "exporting",
) -> ExportResult:
    """Write the job's rows to ``handle``; the caller publishes it (or discards it on error)."""
    try:
        conn.execute("BEGIN")  # one snapshot for the count, the rows and the cursor position
        try:
            return _export(conn, job, handle, config, label)
        finally:
            conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise ExportError(f"reading {job.table}: {exc}") from exc


def _export(
    conn: sqlite3.Connection, job: ExportJob, handle: IO[bytes], config: ExportConfig, label: str
) -> ExportResult:
    total = query.count(conn, job.table, job.row_filter) if sys.stderr.isatty() else None
    latest = query.max_changed_at(conn, job.table, job.row_filter) if job.track_changes else None
    writer = make_writer(conn, job, handle, config)
    sql, params = query.select(job.table, job.columns, job.row_filter)
    cursor = conn.cursor()
    cursor.row_factory = None
    written = 0
    try:
        with progress_bar(total, label) as advance:
            for rows in chunks(cursor.execute(sql, params), config.batch_rows):
                writer.write(rows, written + 1)
                written += len(rows)
                advance(len(rows))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return ExportResult(written, latest)
