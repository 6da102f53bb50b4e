"""The SQL of the run report (``crawler.report``): read-only queries of aggregates, never item rows.

Each function takes a connection (``crawler.storage.reads.open_readonly``) and returns plain
values; the report shapes them (time buckets, medians, the largest groups). The run row, the
runs of a spider, field coverage and the previous successful runs come from ``reads``
(``get_run``, ``list_runs``) and ``quality`` (``run_coverage``, ``successful_runs``). A table a
store from before migration 7 lacks is the caller's to check (``reads.table_columns``): these
queries raise ``sqlite3.OperationalError`` on it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from crawler.storage.reads import table_columns
from crawler.storage.samples import Sample

if TYPE_CHECKING:
    from collections.abc import Sequence

SAMPLE_FIGURES = tuple(f.name for f in fields(Sample) if f.name != "elapsed")
_NONE = "(none)"  # the group of rows without a value


def schema_version(conn: sqlite3.Connection) -> int:
    """The store's schema version (``PRAGMA user_version``: the migrations applied)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def max_elapsed(conn: sqlite3.Connection, run_id: int) -> float | None:
    """The latest ``elapsed`` of the run's samples (any worker); None without samples."""
    row = conn.execute(
        "SELECT max(elapsed) FROM run_samples WHERE run_id = ?", (run_id,)
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


@dataclass(frozen=True)
class SampleBucket:
    """One worker's samples in one time bucket: the bucket's latest ``elapsed`` and the largest
    value of each figure there (counters are cumulative: the last sample's; NULL stays None)."""

    worker: int
    bucket: int
    values: tuple[Any, ...]  # elapsed, then the ``figures`` asked for, in that order


def sample_buckets(
    conn: sqlite3.Connection, run_id: int, width: float, figures: Sequence[str] = SAMPLE_FIGURES
) -> list[SampleBucket]:
    """The run's samples grouped by worker and ``elapsed // width``, by bucket then worker."""
    unknown = set(figures) - set(SAMPLE_FIGURES)
    if unknown:
        raise ValueError(f"not a run_samples figure: {', '.join(sorted(unknown))}")
    columns = "".join(f", max({name})" for name in figures)
    sql = (
        f"SELECT worker, CAST(elapsed / ? AS INTEGER) AS bucket, max(elapsed){columns}"
        " FROM run_samples WHERE run_id = ? GROUP BY worker, bucket ORDER BY bucket, worker"
    )
    return [
        SampleBucket(int(worker), int(bucket), tuple(values))
        for worker, bucket, *values in conn.execute(sql, (width, run_id))
    ]


def _counted(
    conn: sqlite3.Connection, table: str, column: str, run_id: int
) -> list[tuple[str, int]]:
    sql = (
        f"SELECT coalesce({column}, '{_NONE}'), count(*) AS n FROM {table} WHERE run_id = ?"
        " GROUP BY 1 ORDER BY n DESC, 1"
    )
    return [(str(key), int(n)) for key, n in conn.execute(sql, (run_id,))]


def rejects_by_reason(conn: sqlite3.Connection, run_id: int) -> list[tuple[str, int]]:
    """``(reason, rejected items)`` of the run, the most frequent first."""
    return _counted(conn, "rejects", "reason", run_id)


def failed_pages_by(
    conn: sqlite3.Connection, run_id: int, column: Literal["error", "host"]
) -> list[tuple[str, int]]:
    """``(error or host, failed pages)`` of the run, the most frequent first."""
    if column not in ("error", "host"):
        raise ValueError(f"failed pages are not counted by {column!r}")
    return _counted(conn, "failed_pages", column, run_id)


def snapshot_rows(conn: sqlite3.Connection, run_id: int, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` failed pages, then rejected items, of the run that have a snapshot
    file: ``kind`` ("failed page" / "rejected item"), ``url``, ``status``, ``what``, ``snapshot``.
    """
    if limit <= 0:
        return []
    sql = (
        "SELECT 'failed page' AS kind, url, status, error AS what, snapshot FROM failed_pages"
        " WHERE run_id = ? AND snapshot IS NOT NULL ORDER BY id LIMIT ?"
    )
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    rows = [dict(row) for row in cursor.execute(sql, (run_id, limit))]
    if "snapshot" in table_columns(conn, "rejects") and len(rows) < limit:
        sql = (
            "SELECT 'rejected item' AS kind, url, NULL AS status, reason AS what, snapshot"
            " FROM rejects WHERE run_id = ? AND snapshot IS NOT NULL ORDER BY id LIMIT ?"
        )
        rows += [dict(row) for row in cursor.execute(sql, (run_id, limit - len(rows)))]
    return rows
