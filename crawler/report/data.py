"""What the run report shows, read from the store: aggregates only, never the item rows.

Reads, through a read-only connection (``crawler.storage.reads.open_readonly``: nothing is
created or migrated): the ``runs`` row and its stats, ``run_samples`` summed over the workers per
time bucket, ``field_coverage`` summed over the workers (this run and the previous successful runs
of the same spider and arguments), ``rejects`` grouped by reason and ``failed_pages`` grouped by
error and host, and the first snapshots. A store written by an older version lacks some tables:
the section says so (``RunData.missing``) instead of failing.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from dataclasses import dataclass, field
from typing import Any

from crawler import defaults
from crawler.arguments import comparable
from crawler.exitcodes import EXIT_FAILED, EXIT_USAGE
from crawler.storage.reads import dead_runs, get_run, table_columns
from crawler.storage.schema import MIGRATIONS

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


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


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
    where, params = ("WHERE spider = ?", (spider,)) if spider else ("", ())
    row = conn.execute(f"SELECT max(id) FROM runs {where}", params).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def latest_spider(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT spider FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else str(row[0])


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
    data.rejects = grouped(conn, "rejects", "reason", run_id)
    if "failed_pages" not in data.missing:
        data.errors = grouped(conn, "failed_pages", "error", run_id)
        data.error_hosts = grouped(conn, "failed_pages", "host", run_id)
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
    row = conn.execute(
        "SELECT max(elapsed) FROM run_samples WHERE run_id = ?", (run_id,)
    ).fetchone()
    if row is None or row[0] is None:
        return []
    width = max(float(row[0]) / MAX_POINTS, 1e-3)
    columns = ", ".join(f"max({name})" for name in (*COUNTERS, *GAUGES))
    sql = (
        f"SELECT worker, CAST(elapsed / ? AS INTEGER) AS bucket, max(elapsed), {columns}"
        " FROM run_samples WHERE run_id = ? GROUP BY worker, bucket ORDER BY bucket, worker"
    )
    names = ("elapsed", *COUNTERS, *GAUGES)
    by_bucket: dict[int, dict[int, tuple[float, ...]]] = {}
    for worker, bucket, *values in conn.execute(sql, (width, run_id)):
        by_bucket.setdefault(int(bucket), {})[int(worker)] = tuple(float(v or 0) for v in values)
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
    """``{table: {field: (filled, items)}}`` of a run, summed over its workers."""
    sql = (
        "SELECT item_table, field, sum(filled), sum(items) FROM field_coverage"
        " WHERE run_id = ? GROUP BY item_table, field ORDER BY item_table, field"
    )
    result: dict[str, dict[str, tuple[int, int]]] = {}
    for table, name, filled, items in conn.execute(sql, (run_id,)):
        result.setdefault(str(table), {})[str(name)] = (int(filled or 0), int(items or 0))
    return result


def previous_runs(conn: sqlite3.Connection, run: dict[str, Any], limit: int) -> list[int]:
    """The latest ``limit`` successful runs before ``run`` with its spider and arguments."""
    if limit <= 0:
        return []
    wanted = comparable(run.get("arguments") or {})
    sql = (
        "SELECT id, arguments FROM runs WHERE spider = ? AND id < ? AND exit_status = 0"
        " AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 200"
    )
    found: list[int] = []
    for run_id, arguments in conn.execute(sql, (run["spider"], run["id"])):
        try:
            same = comparable(json.loads(arguments or "{}")) == wanted
        except ValueError:
            same = False
        if same:
            found.append(int(run_id))
        if len(found) >= limit:
            break
    return found


def shares(conn: sqlite3.Connection, run_ids: list[int]) -> dict[int, dict[str, float]]:
    """``{run: {"table.field": share}}`` of filled values (the summed "other" row left out)."""
    from crawler.stats import COVERAGE_OTHER

    if not run_ids:
        return {}
    marks = ", ".join("?" * len(run_ids))
    sql = (
        "SELECT run_id, item_table, field, sum(filled), sum(items) FROM field_coverage"
        f" WHERE run_id IN ({marks}) AND field != ? GROUP BY run_id, item_table, field"
    )
    result: dict[int, dict[str, float]] = {run: {} for run in run_ids}
    for run_id, table, name, filled, items in conn.execute(sql, (*run_ids, COVERAGE_OTHER)):
        if items:
            result[int(run_id)][f"{table}.{name}"] = int(filled or 0) / int(items)
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


def grouped(
    conn: sqlite3.Connection, table: str, column: str, run_id: int
) -> list[tuple[str, int]]:
    """Rows of ``table`` for the run counted by ``column``: the ``TOP`` largest, then the rest."""
    sql = (
        f"SELECT coalesce({column}, '(none)'), count(*) AS n FROM {table} WHERE run_id = ?"
        " GROUP BY 1 ORDER BY n DESC, 1"
    )
    rows = [(str(key), int(n)) for key, n in conn.execute(sql, (run_id,))]
    if len(rows) <= TOP:
        return rows
    rest = sum(n for _, n in rows[TOP - 1 :])
    return [*rows[: TOP - 1], (f"({len(rows) - TOP + 1} others)", rest)]


def snapshot_rows(conn: sqlite3.Connection, run_id: int, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` failed pages and rejected items with a snapshot file."""
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


def load_history(conn: sqlite3.Connection, spider: str, last: int) -> list[HistoryRun]:
    """The latest ``last`` runs of ``spider``, oldest first, each with its field coverage."""
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    sql = "SELECT id FROM runs WHERE spider = ? ORDER BY id DESC LIMIT ?"
    ids = [int(row[0]) for row in cursor.execute(sql, (spider, last))][::-1]
    by_run = shares(conn, ids) if has_table(conn, "field_coverage") else {}
    history = []
    for run_id in ids:
        run = get_run(conn, run_id)
        assert run is not None
        history.append(HistoryRun(run=run, coverage=by_run.get(run_id, {})))
    return history
