"""The previous runs a run is compared with: the latest successful runs of the same spider with
the same arguments (Scrapyd's per-run arguments aside), and their figures for the checks across
runs (``crawler.quality.checks``). Used by the health monitor (one process), the workers'
supervisor (``WORKERS=N``) and ``scrapy ingest`` (a Redis crawl).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from crawler.arguments import comparable
from crawler.quality.checks import LOOKBACK, QualityPolicy, RunFigures
from crawler.storage.quality import run_coverage, successful_runs

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Mapping

    from crawler.storage import Store

BASELINE_CANDIDATES = 200  # successful runs of the spider looked at for matching arguments


def matching_runs(
    conn: sqlite3.Connection,
    spider: str,
    arguments: Mapping[str, Any],
    run_id: int | None,
    limit: int,
) -> list[sqlite3.Row]:
    """The latest ``limit`` successful runs of ``spider`` with the same arguments, before
    ``run_id``, newest first (rows of ``storage.quality.successful_runs``); a row whose arguments
    are not JSON matches nothing."""
    wanted = comparable(arguments)
    found: list[sqlite3.Row] = []
    for row in successful_runs(conn, spider, run_id, BASELINE_CANDIDATES):
        if len(found) >= limit:
            break
        try:
            same = comparable(json.loads(row["arguments"] or "{}")) == wanted
        except ValueError:
            same = False
        if same:
            found.append(row)
    return found


def previous_runs(
    store: Store, spider: str, arguments: Mapping[str, Any], run_id: int | None, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    """``matching_runs`` as ``(id, stats)`` (stats ``{}`` when none were recorded)."""
    found: list[tuple[int, dict[str, Any]]] = []
    for row in matching_runs(store.conn, spider, arguments, run_id, limit):
        stats = json.loads(row["stats"]) if row["stats"] else {}
        if not stats:  # a run recorded without stats: its item count is all there is
            stats = {"item_scraped_count": int(row["items"] or 0)}
        found.append((int(row["id"]), stats))
    return found


def previous_figures(
    store: Store,
    spider: str,
    arguments: Mapping[str, Any],
    run_id: int | None,
    policy: QualityPolicy,
) -> list[RunFigures]:
    """What the checks compare with: the previous runs' figures and field coverage."""
    runs = previous_runs(store, spider, arguments, run_id, policy.baseline_runs * LOOKBACK)
    coverage = run_coverage(store.conn, [run for run, _ in runs])
    return [
        RunFigures.from_stats(stats, coverage.get(run, {}), policy.item_stats)
        for run, stats in runs
    ]
