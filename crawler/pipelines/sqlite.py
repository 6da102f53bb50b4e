"""``SQLitePipeline``: upserts every item into its table of the SQLite store.

Any item ``itemadapter`` reads is stored: a declared class (``crawler.items.field_specs``) in
typed columns, a schema-less one (dict, ``scrapy.Item`` without types) in columns inferred from
its values (``crawler.storage.inferred``); its table and key follow ``crawler.itemtables``
(``ITEM_TABLES``, ``ITEM_KEYS``). An object that is no item at all, or that no table can take, is
kept as JSON in ``unplaced_items`` with the reason, counted in ``sqlite/unplaced_items``.

Settings: ``SQLITE_ENABLED`` (off: the pipeline is not loaded), ``SQLITE_PATH``,
``SQLITE_BATCH_SIZE`` and ``SQLITE_BATCH_SECONDS`` (a write every N items or T seconds, and at
close), ``SQLITE_BUSY_TIMEOUT``, ``SQLITE_SYNCHRONOUS``. A store that cannot open closes the
spider with the finish reason ``store_error``; so do repeated failed writes, and a store file
removed or replaced during the crawl (checked at every write and every timer tick).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro
from twisted.internet import task

from crawler.frontier.itemstream import redis_items_wanted
from crawler.itemtables import Placement, TableRules, item_values, row_key
from crawler.storage import STORE_ERROR, open_for_crawl, store_for

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReactorTime
    from twisted.python.failure import Failure

    from crawler.storage import Store, StoreConfig

logger = logging.getLogger(__name__)

MAX_FAILED_FLUSHES = 5  # failed writes in a row before the crawl is stopped


class SQLitePipeline:
    """Buffers items and writes them to the shared ``Store`` in batched upserts."""

    def __init__(self, crawler: Crawler, store: Store) -> None:
        self.crawler = crawler
        self.config: StoreConfig = store.config
        self.store = store
        store.hold()
        self.clock: IReactorTime | None = None  # the reactor unless a test sets one
        self.loop: task.LoopingCall | None = None
        self._warned: set[type] = set()
        self._rules: TableRules | None = None
        self._stopping: Deferred[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SQLitePipeline:
        if redis_items_wanted(crawler.settings):  # scrapy ingest stores this worker's items
            raise NotConfigured("REDIS_ITEMS: items go to the Redis stream")
        # store_for reads StoreConfig.from_settings: NotConfigured when SQLITE_ENABLED is off
        return cls(crawler, store_for(crawler))

    @property
    def rules(self) -> TableRules:
        if self._rules is None:
            self._rules = TableRules.from_settings(self.crawler.settings, self.crawler.spider)
        return self._rules

    def open_spider(self) -> None:
        self._rules = None  # read with this crawl's spider (its item_tables, item_keys)
        _ = self.rules  # a bad ITEM_TABLES / ITEM_KEYS fails now, with its message
        open_for_crawl(self.store)
        # A slow crawl still writes every batch_seconds, not only on the next item.
        self.loop = task.LoopingCall(self.tick)
        if self.clock is not None:
            self.loop.clock = self.clock
        interval = max(0.05, self.config.batch_seconds / 2)
        self.loop.start(interval, now=False).addErrback(self._loop_failed)

    def process_item(self, item: Any) -> Any:
        self.add(item)
        self.flush_if_due()
        return item

    def add(self, item: Any) -> None:
        """Buffer ``item`` in its table; in ``unplaced_items`` when it has none."""
        try:
            placement = self.rules.place(item)
        except TypeError as exc:
            self._unplaced(item, str(exc))
            return
        try:
            values = item_values(item)
            key = row_key(placement, values)
        except (TypeError, ValueError, RecursionError) as exc:
            self._unplaced(item, f"cannot read its fields: {exc}")
            return
        if placement.declared and self._add_declared(item, values, placement, key):
            return
        try:
            self.store.add_record(placement.table, values, key)
        except (TypeError, ValueError, RecursionError) as exc:
            self._unplaced(item, f"cannot store its values in {placement.table}: {exc}")

    def _add_declared(
        self, item: Any, values: dict[str, Any], placement: Placement, key: str
    ) -> bool:
        try:
            self.store.add_item(type(item), values, placement, key)
        except TypeError as exc:  # e.g. a field named like a bookkeeping column
            if type(item) not in self._warned:
                self._warned.add(type(item))
                logger.warning(f"SQLite: {type(item).__name__} stored with inferred columns: {exc}")
            return False
        return True

    def _unplaced(self, item: Any, reason: str) -> None:
        name = str(getattr(self.crawler.spider, "name", None) or "")
        if type(item) not in self._warned:
            self._warned.add(type(item))
            logger.warning(f"SQLite: {type(item).__name__} kept in unplaced_items: {reason}")
        self.store.add_unplaced(name, type(item).__name__, item, reason)

    def flush_if_due(self) -> None:
        if self.store.flush_due() and not self.store.flush():
            self._stop_if_failing()
        if self.store.replaced is not None:
            self._stop()

    def tick(self) -> None:
        """The timer: a removed store is noticed while no item arrives, too."""
        if self.store.is_open:
            self.store.check_path()
        self.flush_if_due()

    def close_spider(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        if self.store.is_open:
            self.store.flush()
        self.store.release()  # the run recorder, if enabled, releases last and closes

    def _stop_if_failing(self) -> None:
        if self.store.failed_flushes < MAX_FAILED_FLUSHES or self._stopping is not None:
            return
        if self._stop():
            logger.error(
                f"SQLite store: {self.store.failed_flushes} writes failed in a row,"
                f" stopping the crawl: {self.store.last_error}"
            )

    def _stop(self) -> bool:
        """Close the spider with ``store_error`` (once); False when it is already closing."""
        engine = self.crawler.engine
        if self._stopping is not None or engine is None or engine.spider is None:
            return False
        self._stopping = deferred_from_coro(engine.close_spider_async(reason=STORE_ERROR))
        return True

    def _loop_failed(self, failure: Failure) -> None:
        logger.error(f"SQLite periodic flush stopped: {failure.getErrorMessage()}")
