"""``SQLitePipeline``: upserts every dataclass item into its table of the SQLite store.

Settings: ``SQLITE_ENABLED`` (off: the pipeline is not loaded), ``SQLITE_PATH``,
``SQLITE_BATCH_SIZE`` and ``SQLITE_BATCH_SECONDS`` (a write every N items or T seconds, and at
close), ``SQLITE_BUSY_TIMEOUT``, ``SQLITE_SYNCHRONOUS``. A store that cannot open closes the
spider with the finish reason ``store_error``; so do repeated failed writes, and a store file
removed or replaced during the crawl (checked at every write and every timer tick).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy.utils.defer import deferred_from_coro
from twisted.internet import task

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
        self._skipped: set[type] = set()
        self._stopping: Deferred[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SQLitePipeline:
        # store_for reads StoreConfig.from_settings: NotConfigured when SQLITE_ENABLED is off
        return cls(crawler, store_for(crawler))

    def open_spider(self) -> None:
        open_for_crawl(self.store)
        # A slow crawl still writes every batch_seconds, not only on the next item.
        self.loop = task.LoopingCall(self.tick)
        if self.clock is not None:
            self.loop.clock = self.clock
        interval = max(0.05, self.config.batch_seconds / 2)
        self.loop.start(interval, now=False).addErrback(self._loop_failed)

    def process_item(self, item: Any) -> Any:
        if not dataclasses.is_dataclass(item) or isinstance(item, type):
            self._skip(type(item))
            return item
        self.store.add_item(type(item), ItemAdapter(item))
        self.flush_if_due()
        return item

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

    def _skip(self, item_cls: type) -> None:
        if item_cls not in self._skipped:
            self._skipped.add(item_cls)
            logger.warning(f"SQLitePipeline stores dataclass items only; not storing {item_cls}")

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
