"""The HTML run report (``scrapy report``, ``REPORT_AT_CLOSE``): data, charts, page.

``build_run_report`` and ``build_history_report`` read the store read-only (aggregates only, see
``crawler.report.data``) and write one self-contained HTML file atomically.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from crawler import defaults
from crawler.atomicfile import create_part, discard, part_path, publish
from crawler.exitcodes import EXIT_FAILED
from crawler.report.data import (
    ReportError,
    check_store,
    latest_run_id,
    latest_spider,
    load_history,
    load_run,
)
from crawler.storage.reads import open_readonly
from crawler.storage.store import StoreError

__all__ = ["ReportConfig", "ReportError", "build_history_report", "build_run_report"]


@dataclass(frozen=True)
class ReportConfig:
    db: str = defaults.SQLITE_PATH
    report_dir: str = "data/reports"
    snapshot_dir: str | None = None  # SNAPSHOT_DIR: where snapshot links point
    compare_runs: int = 5  # previous runs whose median coverage is shown
    snapshots: int = 50  # snapshot links listed
    busy_timeout: float = defaults.SQLITE_BUSY_TIMEOUT
    stale_seconds: float = defaults.RUN_STALE_SECONDS  # a silent process this long was killed


def _open(config: ReportConfig) -> sqlite3.Connection:
    try:
        conn = open_readonly(config.db, config.busy_timeout)
    except StoreError as exc:
        raise ReportError(str(exc)) from None
    try:
        check_store(conn, config.db)
    except BaseException:
        conn.close()
        raise
    return conn


def build_run_report(config: ReportConfig, run_id: int | None, output: str | None) -> Path:
    """Write the report of ``run_id`` (the latest run when None); its path."""
    with closing(_open(config)) as conn:
        try:
            if run_id is None:
                run_id = latest_run_id(conn)
                if run_id is None:
                    raise ReportError(f"no runs recorded in {config.db}: run a crawl first")
            target = Path(output or Path(config.report_dir) / f"run-{run_id}.html")
            data = load_run(
                conn,
                run_id,
                compare=config.compare_runs,
                snapshots=config.snapshots,
                stale_seconds=config.stale_seconds,
            )
        except sqlite3.Error as exc:
            raise ReportError(f"{config.db}: cannot read the store: {exc}", EXIT_FAILED) from exc
    from crawler.report import html  # matplotlib: loaded only when a report is drawn

    snapshot_dir = Path(config.snapshot_dir) if config.snapshot_dir else None
    text = html.run_report(data, links_from=target.parent, snapshot_dir=snapshot_dir)
    return write(target, text)


def build_history_report(
    config: ReportConfig, spider: str | None, last: int, output: str | None
) -> Path:
    """Write the comparison of the last ``last`` runs of ``spider`` (the latest run's spider)."""
    with closing(_open(config)) as conn:
        try:
            if spider is None:
                spider = latest_spider(conn)
                if spider is None:
                    raise ReportError(f"no runs recorded in {config.db}: run a crawl first")
            history = load_history(conn, spider, last)
        except sqlite3.Error as exc:
            raise ReportError(f"{config.db}: cannot read the store: {exc}", EXIT_FAILED) from exc
    if not history:
        raise ReportError(f"no runs of spider {spider!r} in {config.db} (see `scrapy runs`)")
    from crawler.report import html  # matplotlib: loaded only when a report is drawn

    target = Path(output or Path(config.report_dir) / f"{spider}-last-{last}.html")
    return write(target, html.history_report(spider, history))


def write(target: Path, text: str) -> Path:
    """``text`` to ``target``, atomically (a part file renamed into place)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = create_part(part_path(target), "x", encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write {target}: {exc.strerror or exc}", EXIT_FAILED) from None
    try:
        handle.write(text)
        publish(handle, target)
    except OSError as exc:
        discard(handle)
        raise ReportError(f"cannot write {target}: {exc.strerror or exc}", EXIT_FAILED) from None
    return target
