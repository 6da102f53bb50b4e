"""``HealthMonitor``: decides when the spider closes whether the run worked, and says why not.

Settings: ``HEALTH_ENABLED``, ``HEALTH_OK_REASONS``, ``HEALTH_MAX_ERROR_RATIO``,
``HEALTH_MIN_REQUESTS``, ``HEALTH_MIN_ITEM_RATIO``, ``HEALTH_ITEM_STATS`` (rules in
``crawler.stats.judge``), and the ``QUALITY_*`` settings of the checks across runs
(``crawler.quality.checks``): this run's items, field coverage (``stats.COVERAGE``, published
by ``FieldCoverage`` before this runs), error ratio, status-code mix and reject ratio against
the median of the last ``QUALITY_BASELINE_RUNS`` successful runs of the same spider with the same
arguments (the store's ``runs`` and ``field_coverage`` tables). The verdict goes to the stats
(``health/exit_status``, ``health/failure``; every check's result in ``quality/checks``, the
breaches counted in ``quality/breaches``), where the run recorder and ``scrapy crawl`` read it,
and each failure is logged as one ERROR line (``run failed: quality: …`` for a breach).
Registered before ``RunRecorder`` so that it runs first at close.
A worker of a run of several processes (``WORKER_COUNT`` > 1) and a run that resumes another's
crawl do not compare their items and coverage with the previous runs': they have only part of
them; the workers' parent (``crawler.workers``) compares the sum.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler import stats as keys
from crawler.meta import is_own_request
from crawler.quality.baseline import previous_figures
from crawler.quality.checks import (
    CheckResult,
    QualityPolicy,
    RunFigures,
    breaches,
    run_checks,
)
from crawler.storage import StoreError, store_for

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from crawler.storage import Store

logger = logging.getLogger(__name__)


class HealthMonitor:
    """Computes the run's exit status at close (see ``crawler.stats.judge``) and runs the checks
    across runs (``crawler.quality.checks``)."""

    def __init__(
        self,
        crawler: Crawler,
        policy: keys.HealthPolicy,
        store: Store | None,
        quality: QualityPolicy | None = None,
    ) -> None:
        self.crawler = crawler
        self.policy = policy
        self.store = store
        self.quality = quality or QualityPolicy()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> HealthMonitor:
        if not crawler.settings.getbool("HEALTH_ENABLED"):
            raise NotConfigured("HEALTH_ENABLED is off")
        try:
            store: Store | None = store_for(crawler)
        except NotConfigured:
            store = None  # no store: no previous runs, the other rules still apply
        settings = crawler.settings
        ext = cls(
            crawler,
            keys.HealthPolicy.from_settings(settings),
            store,
            QualityPolicy.from_settings(settings),
        )
        crawler.signals.connect(ext.response_received, signal=signals.response_received)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def response_received(self, response: Response, request: Request) -> None:
        if is_own_request(request):
            return  # a component's own request (robots.txt) is not one of the spider's
        stats = self.crawler.stats
        assert stats is not None
        stats.inc_value(keys.RESPONSES)
        if response.status >= 400:
            stats.inc_value(keys.ERROR_RESPONSES)

    def spider_closed(self, spider: Spider, reason: str) -> None:
        stats = self.crawler.stats
        assert stats is not None
        share = self.crawler.settings.getint("WORKER_COUNT", 1) > 1  # the supervisor judges all
        values = stats.get_stats()
        # the items against the previous runs are one of the checks across runs (below)
        verdict = keys.judge(reason, values, self.policy, share=share)
        results = self._checks(spider, values, whole_run=not share)
        failures = (*verdict.failures, *breaches(results))
        for failure in failures:
            logger.error(f"run failed: {failure}")
        stats.set_value(keys.HEALTH_STATUS, 1 if failures else 0)
        if failures:
            stats.set_value(keys.HEALTH_FAILURE, "; ".join(failures))
        stats.set_value(keys.QUALITY_CHECKS, [result.as_dict() for result in results])
        stats.set_value(keys.QUALITY_BREACHES, sum(not result.passed for result in results))

    def _checks(
        self, spider: Spider, values: Mapping[str, Any], *, whole_run: bool
    ) -> list[CheckResult]:
        """The checks across runs; none for a run that fetched nothing (its failure says why)."""
        if keys.fetched_nothing(values, self.policy.items(values)):
            return []
        if values.get(keys.FRONTIER_RESUMED):
            whole_run = False  # it finishes another run's crawl: its own items are only the rest
        current = RunFigures.from_stats(values, None, self.quality.item_stats)
        return run_checks(current, self._previous(spider), self.quality, whole_run=whole_run)

    def _previous(self, spider: Spider) -> list[RunFigures]:
        if self.store is None or not self.store.is_open:
            return []
        stats = self.crawler.stats
        assert stats is not None
        try:
            arguments = getattr(spider, "arguments", {})
            run_id = stats.get_value(keys.RUN_ID)
            return previous_figures(self.store, spider.name, arguments, run_id, self.quality)
        except (sqlite3.Error, StoreError, ValueError) as exc:
            logger.warning(f"previous runs not read, this run not compared with them: {exc}")
            return []
