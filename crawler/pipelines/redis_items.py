"""``RedisItemsPipeline``: a Redis worker's items go to its job's stream, for ``scrapy ingest``.

On only with ``FRONTIER = "redis"`` and ``REDIS_ITEMS = True``; then the SQLite and CSV pipelines
of the worker are off: the one ingesting process writes every worker's items into one store and
one CSV per run. Each item is placed as ``SQLitePipeline`` places it (``crawler.itemtables``:
its table, natural key and row key) and buffered as one stream entry
(``crawler.frontier.itemstream``); so is every ``RejectItem`` (``item_dropped``) and every object
no table can take. The buffer goes to the job's ``…:items`` stream in one pipelined batch of
``XADD`` when it holds ``REDIS_ITEMS_BATCH_SIZE`` entries, whenever the Redis frontier flushes
(``flush``: before it marks the requests that produced them done) and at close. A batch that
fails stays buffered for the next flush (the requests stay leased meanwhile), so an item is
delivered at least once, and the ingester's upserts make twice the same as once.
Settings: ``FRONTIER``, ``REDIS_ITEMS``, ``REDIS_ITEMS_BATCH_SIZE``, ``REDIS_URL``/``REDIS_PARAMS``
and ``REDIS_KEY_PREFIX`` (``crawler.frontier.redisconn``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler import defaults
from crawler.exceptions import RejectItem
from crawler.frontier.itemstream import (
    FIELD,
    REJECT,
    UNPLACED,
    item_entry,
    other_entry,
    redis_items_wanted,
    register_items_sink,
)
from crawler.frontier.jobs import job_arguments
from crawler.frontier.redisconn import CONNECTION_ERRORS, RedisKeys, connect, redis_url, shown_url
from crawler.itemtables import TableRules, item_values, row_key
from crawler.storage.store import utc_now

if TYPE_CHECKING:
    import redis
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

SENT = "redis_items/sent"
REJECTS_SENT = "redis_items/rejects_sent"
FAILED_FLUSHES = "redis_items/failed_flushes"


@dataclass(frozen=True)
class RedisItemsConfig:
    batch_size: int

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RedisItemsConfig:
        if not redis_items_wanted(settings):
            raise NotConfigured  # off by default: no "Disabled" warning in every crawl's log
        size = settings.getint("REDIS_ITEMS_BATCH_SIZE", defaults.REDIS_ITEMS_BATCH_SIZE)
        if size < 1:
            raise ValueError(f"REDIS_ITEMS_BATCH_SIZE must be at least 1, not {size}")
        return cls(size)


class RedisItemsPipeline:
    """Buffers items, rejects and unplaced objects as stream entries and ``XADD``s them."""

    def __init__(self, crawler: Crawler, config: RedisItemsConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.client: redis.Redis | None = None
        self.keys: RedisKeys | None = None
        self.pending: list[str] = []
        self._rules: TableRules | None = None
        self._failed = 0  # flushes in a row

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RedisItemsPipeline:
        pipeline = cls(crawler, RedisItemsConfig.from_settings(crawler.settings))
        crawler.signals.connect(pipeline.item_dropped, signal=signals.item_dropped)
        register_items_sink(crawler, pipeline)
        return pipeline

    @property
    def rules(self) -> TableRules:
        if self._rules is None:
            self._rules = TableRules.from_settings(self.crawler.settings, self.crawler.spider)
        return self._rules

    def open_spider(self) -> None:
        settings, spider = self.crawler.settings, self.crawler.spider
        assert spider is not None
        self._rules = None
        _ = self.rules  # a bad ITEM_TABLES / ITEM_KEYS fails now, with its message
        self.keys = RedisKeys.for_job(settings, spider.name, job_arguments(spider, settings))
        self.client = connect(settings)

    def process_item(self, item: Any) -> Any:
        self.pending.append(self._entry(item))
        self.crawler.stats.inc_value(SENT)
        if len(self.pending) >= self.config.batch_size:
            self.flush()
        return item

    def _entry(self, item: Any) -> str:
        try:
            placement = self.rules.place(item)
        except TypeError as exc:
            return self._unplaced(item, str(exc))
        try:
            values = item_values(item)
            key = row_key(placement, values)
        except (TypeError, ValueError, RecursionError) as exc:
            return self._unplaced(item, f"cannot read its fields: {exc}")
        try:
            return item_entry(type(item).__name__, placement, values, key, utc_now())
        except (TypeError, ValueError, RecursionError) as exc:
            return self._unplaced(item, f"cannot store its values in {placement.table}: {exc}")

    def _unplaced(self, item: Any, reason: str) -> str:
        spider = str(getattr(self.crawler.spider, "name", None) or "")
        try:
            return other_entry(UNPLACED, type(item).__name__, item, reason, spider)
        except (TypeError, ValueError, RecursionError):
            return other_entry(UNPLACED, type(item).__name__, {"repr": repr(item)[:100_000]},
                               reason, spider)  # fmt: skip

    def item_dropped(self, item: Any, exception: BaseException) -> None:
        if not isinstance(exception, RejectItem):
            return
        values = dict(ItemAdapter(item)) if ItemAdapter.is_item(item) else {"value": item}
        self.pending.append(other_entry(REJECT, type(item).__name__, values, exception.reason))
        self.crawler.stats.inc_value(REJECTS_SENT)

    def flush(self) -> bool:
        """``XADD`` the buffer in one pipelined round trip; on failure keep it (False)."""
        if not self.pending:
            return True
        if self.client is None or self.keys is None:
            return False
        batch = self.pending
        pipe = self.client.pipeline(transaction=False)
        for text in batch:
            pipe.xadd(self.keys.items, {FIELD: text})
        try:
            pipe.execute()
        except CONNECTION_ERRORS as exc:
            self._failed += 1
            self.crawler.stats.inc_value(FAILED_FLUSHES)
            log = logger.warning if self._failed == 1 else logger.debug
            where = shown_url(redis_url(self.crawler.settings))
            log(f"Redis items: {len(batch)} entries kept for retry, {where}: {exc}")
            return False
        # a retry after a half-done pipeline may send some twice: the ingester's upserts absorb it
        self.pending = []
        self._failed = 0
        return True

    frontier_flush = flush  # what the Redis frontier calls before it marks requests done

    def close_spider(self) -> None:
        if self.pending and not self.flush():
            logger.error(
                f"Redis items: {len(self.pending)} items and rejects not sent to"
                f" {self.keys.items if self.keys else 'the stream'}: Redis unreachable at close"
            )
        if self.client is not None:
            self.client.close()
