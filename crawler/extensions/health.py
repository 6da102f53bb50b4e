"""``HealthMonitor``: decides when the spider closes whether the run worked, and says why not.

Settings: ``HEALTH_ENABLED``, ``HEALTH_OK_REASONS``, ``HEALTH_MAX_ERROR_RATIO``,
``HEALTH_MIN_REQUESTS``, ``HEALTH_MIN_ITEM_RATIO``, ``HEALTH_ITEM_STATS`` (rules in
``crawler.stats.judge``). The previous successful run of the same spider with the same arguments
comes from the store's ``runs`` table. The verdict goes to the stats (``health/exit_status``,
``health/failure``), where the run recorder and ``scrapy crawl`` read it, and each failure is
logged as one ERROR line. Registered before ``RunRecorder`` so that it runs first at close.
A worker of a run of several processes (``WORKER_COUNT`` > 1) does not compare its items with the
previous run's: it has only its share of them; the workers' parent (``crawler.workers``) compares
the sum.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler import stats as keys
from crawler.arguments import SCRAPYD_ARGUMENTS
from crawler.meta import is_own_request
from crawler.storage import StoreError, store_for
from crawler.storage.schema import to_json

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from crawler.storage import Store

logger = logging.getLogger(__name__)

BASELINE_CANDIDATES = 200  # successful runs of the spider looked at for matching arguments


def comparable(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as stored (JSON), without the per-run ones Scrapyd adds."""
    values = json.loads(to_json(arguments))
    return {k: v for k, v in values.items() if k not in SCRAPYD_ARGUMENTS}


def find_baseline(
    store: Store,
    spider: str,
    arguments: Mapping[str, Any],
    policy: keys.HealthPolicy,
    run_id: int | None,
) -> keys.Baseline | None:
    """The latest successful run of ``spider`` with the same arguments, before ``run_id``."""
    wanted = comparable(arguments)
    rows = store.successful_runs(spider, run_id, BASELINE_CANDIDATES)
    for row in rows:
        if comparable(json.loads(row["arguments"] or "{}")) != wanted:
            continue
        stats = json.loads(row["stats"]) if row["stats"] else None
        items = policy.items(stats) if stats else int(row["items"] or 0)
        return keys.Baseline(run_id=int(row["id"]), items=items)
    return None


class HealthMonitor:
    """Computes the run's exit status at close (see ``crawler.stats.judge``)."""

    def __init__(self, crawler: Crawler, policy: keys.HealthPolicy, store: Store | None) -> None:
        self.crawler = crawler
        self.policy = policy
        self.store = store

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> HealthMonitor:
        if not crawler.settings.getbool("HEALTH_ENABLED"):
            raise NotConfigured("HEALTH_ENABLED is off")
        try:
            store: Store | None = store_for(crawler)
        except NotConfigured:
            store = None  # no store: no baseline, the other rules still apply
        ext = cls(crawler, keys.HealthPolicy.from_settings(crawler.settings), store)
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
        verdict = keys.judge(
            reason, stats.get_stats(), self.policy, self._baseline(spider), share=share
        )
        for failure in verdict.failures:
            logger.error(f"run failed: {failure}")
        stats.set_value(keys.HEALTH_STATUS, verdict.exit_status)
        if verdict.failure:
            stats.set_value(keys.HEALTH_FAILURE, verdict.failure)

    def _baseline(self, spider: Spider) -> keys.Baseline | None:
        if self.store is None or not self.store.is_open or not self.policy.min_item_ratio:
            return None
        if self.crawler.settings.getint("WORKER_COUNT", 1) > 1:
            return None  # a worker's share of the items: the workers' parent compares the sum
        stats = self.crawler.stats
        assert stats is not None
        if stats.get_value(keys.FRONTIER_RESUMED):
            return None  # it finishes another run's crawl: its own items are only the rest
        try:
            arguments = getattr(spider, "arguments", {})
            run_id = stats.get_value(keys.RUN_ID)
            return find_baseline(self.store, spider.name, arguments, self.policy, run_id)
        except (sqlite3.Error, StoreError, ValueError) as exc:
            logger.warning(f"previous run not read, item count not compared: {exc}")
            return None
