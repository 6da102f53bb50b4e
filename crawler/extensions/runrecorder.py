"""``RunRecorder``: one row per crawl in the store's ``runs`` table, and every rejected item.

Settings: ``RUN_RECORD`` (off: not loaded; ``scrapy crawl`` and ``scrapy runspider`` switch it
on, so ``shell``, ``fetch``, ``parse`` and ``check`` leave no row), ``SQLITE_ENABLED`` (off: not
loaded), ``CRAWL_PROFILE`` (recorded), and every setting
given on the command line (``-s``), recorded with secrets masked by the one secret policy
(``crawler.safety.secrets``: by name, known secret values, URL credentials), as are the spider's
arguments, the final stats and the failure text. The run row is inserted when
the spider opens (its id goes to the ``run/id`` stat) and completed when it closes: finish
reason, counts, exit status (the health monitor's verdict, see ``crawler.stats``), why the run
failed, and the final stats.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import CloseSpider, NotConfigured
from scrapy.settings import SETTINGS_PRIORITIES

from crawler import defaults
from crawler import stats as keys
from crawler.exceptions import RejectItem
from crawler.safety.secrets import Redactor, arguments_secrets, masked, settings_secrets
from crawler.storage import STORE_ERROR, StoreError, open_for_crawl, store_for
from crawler.storage.store import UNSAVED_ITEMS

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from scrapy.statscollectors import StatsCollector

    from crawler.storage import Store

logger = logging.getLogger(__name__)


def command_line_settings(
    settings: BaseSettings, redactor: Redactor | None = None
) -> dict[str, Any]:
    """The settings given with ``-s`` (cmdline priority), secrets masked."""
    cmdline = SETTINGS_PRIORITIES["cmdline"]
    mask = redactor.mask if redactor is not None else masked
    return {
        name: mask(name, settings[name])
        for name in sorted(settings)
        if (settings.getpriority(name) or 0) >= cmdline
    }


class RunRecorder:
    """Writes the ``runs`` row of a crawl and a ``rejects`` row per ``RejectItem``."""

    def __init__(self, crawler: Crawler, store: Store) -> None:
        self.crawler = crawler
        self.store = store
        store.hold()
        self.run_id: int | None = None
        self.redactor = Redactor(())  # this crawl's secrets, known when the spider opens

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunRecorder:
        if not crawler.settings.getbool("RUN_RECORD", defaults.RUN_RECORD):
            raise NotConfigured  # only crawl and runspider record runs: no warning for the others
        ext = cls(crawler, store_for(crawler))  # NotConfigured when SQLITE_ENABLED is off
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Spider) -> None:
        # Runs after the pipelines' open_spider: the store may already be open (or have failed).
        open_for_crawl(self.store)
        settings = self.crawler.settings
        arguments = getattr(spider, "arguments", {})
        self.redactor = Redactor(settings_secrets(settings) | arguments_secrets(arguments))
        try:
            self.run_id = self.store.start_run(
                spider.name,
                arguments=self.redactor.mask("", arguments),
                profile=settings.get("CRAWL_PROFILE"),
                settings=command_line_settings(settings, self.redactor),
            )
        except StoreError as exc:
            logger.error(f"SQLite store unavailable: {exc}")
            raise CloseSpider(STORE_ERROR) from exc
        self._stats().set_value(keys.RUN_ID, self.run_id)

    def item_dropped(self, item: Any, exception: BaseException) -> None:
        if not isinstance(exception, RejectItem):
            return
        values = dict(ItemAdapter(item)) if ItemAdapter.is_item(item) else {"value": item}
        self.store.add_reject(type(item).__name__, values, exception.reason)
        if self.store.is_open and self.store.flush_due():
            self.store.flush()

    def spider_closed(self, spider: Spider, reason: str) -> None:
        try:
            if self.store.is_open:
                self.store.flush()  # rejects, and items the pipeline could not write
                if self.store.replaced is not None and reason != STORE_ERROR:
                    reason = self._store_replaced_at_close()
                if self.run_id is not None:
                    self._finish(reason)
        finally:
            self.store.release()  # last holder: closes the store after the run row is done

    def _store_replaced_at_close(self) -> str:
        """The store file went away too late to stop the crawl: the run failed all the same."""
        stats = self._stats()
        failures = [stats.get_value(keys.HEALTH_FAILURE), f"store: {self.store.replaced}"]
        stats.set_value(keys.HEALTH_STATUS, 1)  # what `scrapy crawl` exits with
        stats.set_value(keys.HEALTH_FAILURE, "; ".join(str(f) for f in failures if f))
        return STORE_ERROR

    def _finish(self, reason: str) -> None:
        assert self.run_id is not None
        stats = self._stats()
        if self.store.pending_items:
            stats.set_value(UNSAVED_ITEMS, self.store.pending_items)
        values = stats.get_stats()
        verdict = keys.recorded_verdict(values, reason)  # what `scrapy crawl` exits with
        try:
            self.store.finish_run(
                self.run_id,
                reason=reason,
                counts=keys.run_counts(values),
                exit_status=verdict.exit_status,
                stats=self.redactor.redact_values(values),
                failure=self.redactor(verdict.failure) if verdict.failure else None,
            )
        except StoreError as exc:
            logger.error(f"SQLite store: run {self.run_id} not finalised: {exc}")

    def _stats(self) -> StatsCollector:
        return self.crawler.stats
