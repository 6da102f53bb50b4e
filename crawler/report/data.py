"""What the run report shows, read from the store: aggregates only, never the item rows.

Reads, through a read-only connection (``crawler.storage.reads.open_readonly``: nothing is
created or migrated): the ``runs`` row and its stats, ``run_samples`` summed over the workers per
time bucket, ``field_coverage`` summed over the workers (this run and the previous successful runs
of the same spider and arguments), ``rejects`` grouped by reason and ``failed_pages`` grouped by
error and host, and the first snapshots. A store written by an older version lacks some tables:
the section says so (``RunData.missing``) instead of failing. The queries are in
``crawler.storage`` (``reports``, ``reads``, ``quality``); this module shapes what they return.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crawler import defaults
from crawler.exitcodes import EXIT_FAILED, EXIT_USAGE
from crawler.quality.baseline import matching_runs
from crawler.quality.checks import share_of
from crawler.stats import COVERAGE_OTHER
from crawler.storage.quality import run_coverage
from crawler.storage.reads import dead_runs, get_run, list_runs, table_columns
from crawler.storage.reports import (
    failed_pages_by,
    max_elapsed,
    rejects_by_reason,
    sample_buckets,
    schema_version,
    snapshot_rows,
)
from crawler.storage.schema import MIGRATIONS

if TYPE_CHECKING:
    import sqlite3

MAX_POINTS = 600  # time buckets of the series: a day-long run draws as fast as a short one
TOP = 15  # rows of a grouped table (reasons, errors, hosts) before the rest is summed
COUNTERS = ("pages", "items", "errors", "rejects", "bytes", "rendered")
GAUGES = ("in_flight", "queued")
UPGRADE = "run a crawl with this version to upgrade the store"


class ReportError(Exception):
    """A report that cannot be built: one line for the user, and the exit status."""

    def __init__(self, message: str, exit_status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_status = exit_status


@dataclass
class RunData:
    run: dict[str, Any]
    version: int  # the store's schema version (PRAGMA user_version)
    samples: list[dict[str, float]] = field(default_factory=list)
    coverage: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    previous: list[int] = field(default_factory=list)  # runs the coverage is compared with
    previous_coverage: dict[str, dict[str, float]] = field(default_factory=dict)  # median share
    rejects: list[tuple[str, int]] = field(default_factory=list)
    errors: list[tuple[str, int]] = field(default_factory=list)
    error_hosts: list[tuple[str, int]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # table -> why it is not there

    @property
    def stats(self) -> dict[str, Any]:
        stats = self.run.get("stats")
        return stats if isinstance(stats, dict) else {}


@dataclass
class HistoryRun:
    run: dict[str, Any]
    coverage: dict[str, float]  # "table.field" -> share


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return bool(table_columns(conn, name))


def check_store(conn: sqlite3.Connection, db: str) -> int:
    """The schema version; ``ReportError`` for a file without runs or from a newer version."""
    if not has_table(conn, "runs"):
        raise ReportError(f"{db}: no runs table (not a crawler store?)")
    version = schema_version(conn)
    if version > len(MIGRATIONS):
        raise ReportError(f"{db}: store schema {version} is newer than this code", EXIT_FAILED)
    return version


def latest_run_id(conn: sqlite3.Connection, spider: str | None = None) -> int | None:
    runs = list_runs(conn, 1, spider)
    return int(runs[0]["id"]) if runs else None


def latest_spider(conn: sqlite3.Connection) -> str | None:
    runs = list_runs(conn, 1)
    return str(runs[0]["spider"]) if runs else None


def load_run(
    conn: sqlite3.Connection,
    run_id: int,
    *,
    compare: int = 5,
    snapshots: int = 50,
    stale_seconds: float = defaults.RUN_STALE_SECONDS,
) -> RunData:
    """Everything the report of run ``run_id`` shows; ``ReportError`` if there is no such run."""
    run = get_run(conn, run_id)
    if run is None:
        raise ReportError(f"no run {run_id} in the store (see `scrapy runs`)")
    data = RunData(run=run, version=schema_version(conn))
    if run.get("finished_at") is None and has_table(conn, "run_workers"):
        gone = dead_runs(conn, stale_seconds)
        if run_id in gone:
            run["gone"] = gone[run_id] or run.get("started_at") or "-"
    for table in ("run_samples", "field_coverage", "failed_pages"):
        if not has_table(conn, table):
            data.missing[table] = (
                f"this store (schema {data.version}) was written before {table} existed: {UPGRADE}"
            )
    data.checks = _checks(run.get("checks"))
    if "run_samples" not in data.missing:
        data.samples = samples(conn, run_id)
    if "field_coverage" not in data.missing:
        data.coverage = coverage(conn, run_id)
        data.previous = previous_runs(conn, run, compare)
        data.previous_coverage = median_coverage(conn, data.previous)
    data.rejects = top(rejects_by_reason(conn, run_id))
    if "failed_pages" not in data.missing:
        data.errors = top(failed_pages_by(conn, run_id, "error"))
        data.error_hosts = top(failed_pages_by(conn, run_id, "host"))
        data.snapshots = snapshot_rows(conn, run_id, snapshots)
    return data


def _checks(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return []
    return [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []


def samples(conn: sqlite3.Connection, run_id: int) -> list[dict[str, float]]:
    """The run's samples summed over its workers, in at most ``MAX_POINTS`` time buckets.

    Counters are cumulative, so a worker's last sample in a bucket is its value there; a worker
    without a sample in a bucket keeps its previous value (gauges too)."""
    longest = max_elapsed(conn, run_id)
    if longest is None:
        return []
    width = max(longest / MAX_POINTS, 1e-3)
    names = ("elapsed", *COUNTERS, *GAUGES)
    by_bucket: dict[int, dict[int, tuple[float, ...]]] = {}
    for row in sample_buckets(conn, run_id, width, (*COUNTERS, *GAUGES)):
        by_bucket.setdefault(row.bucket, {})[row.worker] = tuple(float(v or 0) for v in row.values)
    last: dict[int, tuple[float, ...]] = {}
    # every counter is 0 when the spider opens: a run shorter than the sampling interval (one
    # final sample) still has a line, its average
    series: list[dict[str, float]] = [dict.fromkeys(names, 0.0)]
    for bucket in sorted(by_bucket):
        last.update(by_bucket[bucket])
        point = {name: sum(v[i] for v in last.values()) for i, name in enumerate(names)}
        point["elapsed"] = max(v[0] for v in by_bucket[bucket].values())
        if point["elapsed"] > series[-1]["elapsed"]:
            series.append(point)
        else:  # a sample at 0 s replaces the origin
            series[-1] = point
    return series


def coverage(conn: sqlite3.Connection, run_id: int) -> dict[str, dict[str, tuple[int, int]]]:
    """``{table: {field: (filled, items)}}`` of a run, summed over its workers, by name."""
    found = run_coverage(conn, [run_id]).get(run_id, {})
    return {
        table: {
            name: (filled, figures["items"]) for name, filled in sorted(figures["fields"].items())
        }
        for table, figures in sorted(found.items())
    }


def previous_runs(conn: sqlite3.Connection, run: dict[str, Any], limit: int) -> list[int]:
    """The latest ``limit`` successful runs before ``run`` with its spider and arguments."""
    if limit <= 0:
        return []
    matching = matching_runs(conn, run["spider"], run.get("arguments") or {}, run["id"], limit)
    return [int(row["id"]) for row in matching]


def shares(conn: sqlite3.Connection, run_ids: list[int]) -> dict[int, dict[str, float]]:
    """``{run: {"table.field": share}}`` of filled values (the summed "other" row left out)."""
    if not run_ids:
        return {}
    result: dict[int, dict[str, float]] = {run: {} for run in run_ids}
    for run_id, tables in run_coverage(conn, run_ids).items():
        for table, figures in sorted(tables.items()):
            for name in sorted(figures["fields"]):
                share = share_of(figures, name)
                if name != COVERAGE_OTHER and share is not None:
                    result[run_id][f"{table}.{name}"] = share
    return result


def median_coverage(conn: sqlite3.Connection, run_ids: list[int]) -> dict[str, dict[str, float]]:
    """``{table: {field: median share}}`` over ``run_ids`` (runs that have the field)."""
    values: dict[str, list[float]] = {}
    for per_run in shares(conn, run_ids).values():
        for key, share in per_run.items():
            values.setdefault(key, []).append(share)
    result: dict[str, dict[str, float]] = {}
    for key, found in values.items():
        table, _, name = key.partition(".")
        result.setdefault(table, {})[name] = statistics.median(found)
    return result


def top(rows: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Counted groups, largest first: the ``TOP`` largest, then the rest summed in one row."""
    if len(rows) <= TOP:
        return rows
    rest = sum(n for _, n in rows[TOP - 1 :])
    return [*rows[: TOP - 1], (f"({len(rows) - TOP + 1} others)", rest)]


def load_history(conn: sqlite3.Connection, spider: str, last: int) -> list[HistoryRun]:
    """The latest ``last`` runs of ``spider``, oldest first, each with its field coverage."""
    runs = list_runs(conn, last, spider)[::-1]
    ids = [int(run["id"]) for run in runs]
    by_run = shares(conn, ids) if has_table(conn, "field_coverage") else {}
    return [HistoryRun(run=run, coverage=by_run.get(int(run["id"]), {})) for run in runs]
