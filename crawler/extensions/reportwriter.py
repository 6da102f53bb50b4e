"""``ReportAtClose``: writes the run's HTML report when the crawl ends, and prints where it is.

Settings: ``REPORT_AT_CLOSE`` (off by default: not loaded), ``REPORT_DIR`` (the report goes to
``REPORT_DIR/run-<id>.html``), ``REPORT_COMPARE_RUNS``, ``REPORT_SNAPSHOT_LINKS``,
``SNAPSHOT_DIR`` (where snapshot links point), ``SQLITE_PATH``. Needs the run row: not loaded
without ``RUN_RECORD`` or ``SQLITE_ENABLED``, nor in a ``WORKERS`` child (its parent owns the
run). Registered after the run recorder (100) and the progress summary (200): the row is final
when the report reads it, and ``  report: PATH`` is printed after the summary. The path goes to
the ``report/path`` stat; a report that cannot be written is one WARNING, never a failed crawl.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler import defaults
from crawler import stats as keys
from crawler.report import ReportConfig, build_run_report

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)


def report_config(settings: BaseSettings) -> ReportConfig:
    """The report's settings (``REPORT_*``, ``SQLITE_PATH``, ``SNAPSHOT_DIR``)."""
    snapshots = settings.get("SNAPSHOT_DIR") or getattr(defaults, "SNAPSHOT_DIR", None)
    return ReportConfig(
        db=str(settings.get("SQLITE_PATH") or defaults.SQLITE_PATH),
        report_dir=str(settings.get("REPORT_DIR") or defaults.REPORT_DIR),
        snapshot_dir=str(snapshots) if snapshots else None,
        compare_runs=settings.getint("REPORT_COMPARE_RUNS", defaults.REPORT_COMPARE_RUNS),
        snapshots=settings.getint("REPORT_SNAPSHOT_LINKS", defaults.REPORT_SNAPSHOT_LINKS),
        busy_timeout=settings.getfloat("SQLITE_BUSY_TIMEOUT", defaults.SQLITE_BUSY_TIMEOUT),
        stale_seconds=settings.getfloat("RUN_STALE_SECONDS", defaults.RUN_STALE_SECONDS),
    )


class ReportAtClose:
    """Builds ``REPORT_DIR/run-<id>.html`` for the run that just ended."""

    def __init__(self, crawler: Crawler, config: ReportConfig) -> None:
        self.crawler = crawler
        self.config = config

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ReportAtClose:
        settings = crawler.settings
        if not settings.getbool("REPORT_AT_CLOSE", defaults.REPORT_AT_CLOSE):
            raise NotConfigured  # off by default: no warning line
        if not settings.getbool("RUN_RECORD", defaults.RUN_RECORD):
            raise NotConfigured("RUN_RECORD is off: no run row to report on")
        if not settings.getbool("SQLITE_ENABLED", defaults.SQLITE_ENABLED):
            raise NotConfigured("SQLITE_ENABLED is off: no store to report from")
        if settings.getint("WORKER_RUN_ID"):
            raise NotConfigured  # a WORKERS child: the parent writes the report
        ext = cls(crawler, report_config(settings))
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_closed(self) -> None:
        stats = self.crawler.stats
        assert stats is not None
        run_id = stats.get_value(keys.RUN_ID)
        if run_id is None:
            return  # the run row was never written (the store failed): nothing to report
        try:
            path = build_run_report(self.config, int(run_id), None)
        except Exception as exc:  # ReportError, or any other: a report never fails the crawl
            logger.warning(f"HTML report of run {run_id} not written: {exc}")
            return
        stats.set_value(keys.REPORT_PATH, str(path))
        sys.stderr.write(f"  report: {path}\n")
        sys.stderr.flush()
