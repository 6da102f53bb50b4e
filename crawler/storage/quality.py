"""The SQL of data quality: ``field_coverage`` rows and the previous runs the checks compare with.

A run's coverage is ``{table: {"items": n, "fields": {field: filled}}}`` (the ``COVERAGE`` stat,
``crawler.extensions.coverage``); each process of a run writes its own rows (``worker``), and a
run's coverage is their sum. The writes run inside the caller's transaction (the run row's).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

Coverage = dict[str, dict[str, Any]]  # {table: {"items": n, "fields": {field: filled}}}


def coverage_rows(
    run_id: int, worker: int, coverage: Mapping[str, Mapping[str, Any]]
) -> list[tuple[Any, ...]]:
    """The ``field_coverage`` rows of one process's coverage."""
    rows = []
    for table, figures in coverage.items():
        items = int(figures.get("items") or 0)
        for name, filled in (figures.get("fields") or {}).items():
            rows.append((run_id, worker, str(table), str(name), int(filled or 0), items))
    return rows


def write_coverage(
    conn: sqlite3.Connection,
    run_id: int,
    worker: int,
    coverage: Mapping[str, Mapping[str, Any]],
) -> None:
    """Replace the coverage rows of ``(run_id, worker)`` (a restarted worker writes anew)."""
    conn.execute("DELETE FROM field_coverage WHERE run_id = ? AND worker = ?", (run_id, worker))
    conn.executemany(
        "INSERT INTO field_coverage (run_id, worker, item_table, field, filled, items)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        coverage_rows(run_id, worker, coverage),
    )


def write_checks(conn: sqlite3.Connection, run_id: int, checks: list[Any]) -> None:
    conn.execute("UPDATE runs SET checks = ? WHERE id = ?", (json.dumps(checks), run_id))


@dataclass(frozen=True)
class RunQuality:
    """What a finishing process writes with its run or worker row: its field coverage (as
    worker ``worker``) and, for the run row, the checks' results (None: left as they are)."""

    worker: int = 0
    coverage: Mapping[str, Mapping[str, Any]] | None = None  # None: left as they are
    checks: list[Any] | None = None

    def write(self, conn: sqlite3.Connection, run_id: int) -> None:
        if self.coverage is not None:
            write_coverage(conn, run_id, self.worker, self.coverage)
        if self.checks is not None:
            write_checks(conn, run_id, self.checks)


def run_coverage(conn: sqlite3.Connection, run_ids: Iterable[int]) -> dict[int, Coverage]:
    """The coverage of each run, summed over its workers; a run without rows is left out.

    A table's items are the sum over the workers that have rows for it (each row of a worker's
    table carries the same ``items``)."""
    ids = list(run_ids)
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    found: dict[int, Coverage] = {}
    try:
        rows = conn.execute(
            "SELECT run_id, item_table, field, sum(filled) FROM field_coverage"
            f" WHERE run_id IN ({marks}) GROUP BY run_id, item_table, field",
            ids,
        ).fetchall()
        items = conn.execute(
            "SELECT run_id, item_table, sum(items) FROM (SELECT DISTINCT run_id, worker,"
            f" item_table, items FROM field_coverage WHERE run_id IN ({marks}))"
            " GROUP BY run_id, item_table",
            ids,
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}  # a store from before migration 7, read-only: no coverage recorded
        raise
    for run_id, table, total in items:
        found.setdefault(int(run_id), {})[str(table)] = {"items": int(total), "fields": {}}
    for run_id, table, name, filled in rows:
        found[int(run_id)][str(table)]["fields"][str(name)] = int(filled)
    return found


def successful_runs(
    conn: sqlite3.Connection, spider: str, before: int | None, limit: int
) -> list[sqlite3.Row]:
    """The latest finished runs of ``spider`` that exited 0, before run ``before``, newest
    first (``id``, ``arguments``, ``stats``, ``items``, JSON undecoded): the runs a run is
    compared with (the checks, the report's coverage medians)."""
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(
        "SELECT id, arguments, stats, items FROM runs WHERE spider = ? AND exit_status = 0"
        " AND finished_at IS NOT NULL AND id < ? ORDER BY id DESC LIMIT ?",
        (spider, before if before is not None else 2**62, limit),
    ).fetchall()


def run_checks_of(conn: sqlite3.Connection, run_id: int) -> list[dict[str, Any]]:
    """The ``runs.checks`` results of a run ([] when none, or a store from before them)."""
    try:
        row = conn.execute("SELECT checks FROM runs WHERE id = ?", (run_id,)).fetchone()
    except sqlite3.OperationalError:
        return []
    if row is None or not row[0]:
        return []
    value = json.loads(row[0])
    return value if isinstance(value, list) else []
