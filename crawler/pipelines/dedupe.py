"""``DedupePipeline``: keep one item per natural key and table in a run.

Settings: ``DEDUPE_ENABLED``. The key is the one the store upserts on (``crawler.itemtables``):
``ITEM_KEYS``, the spider's ``item_keys`` or the class's ``key`` (``sku`` for products, ``url``
for pages); an item without one is identified by a hash of its content, so only an identical
repeat is dropped. An item lacking a value of its key passes (validate rejects those). A
repeat is dropped with ``DropItem("duplicate of sku='A1'")`` at DEBUG level and counted in
``dedupe/dropped``. Memory stays small: a 16-byte digest per key, not the item. Objects that
are no item pass untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import DropItem, NotConfigured

from crawler import defaults
from crawler.itemtables import TableRules, item_values, key_values, row_key
from crawler.stats import DUPLICATES

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings


@dataclass(frozen=True)
class DedupeConfig:
    @classmethod
    def from_settings(cls, settings: BaseSettings) -> DedupeConfig:
        if not settings.getbool("DEDUPE_ENABLED", defaults.DEDUPE_ENABLED):
            raise NotConfigured("DEDUPE_ENABLED is off")
        return cls()


def key_digest(table: str, key: str) -> bytes:
    """16 bytes that stand for one row key of one table."""
    text = repr((table, key))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class DedupePipeline:
    """Drops the second and later items with the same natural key (``DEDUPE_ENABLED``)."""

    def __init__(self, crawler: Crawler, config: DedupeConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.seen: set[bytes] = set()
        self._rules: TableRules | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DedupePipeline:
        return cls(crawler, DedupeConfig.from_settings(crawler.settings))

    @property
    def rules(self) -> TableRules:
        if self._rules is None:
            self._rules = TableRules.from_settings(self.crawler.settings, self.crawler.spider)
        return self._rules

    def process_item(self, item: Any) -> Any:
        try:
            placement = self.rules.place(item)
            values = item_values(item)
            key = row_key(placement, values)
        except (TypeError, ValueError, RecursionError):
            return item  # the store keeps it in unplaced_items
        found = key_values(placement, values)
        if placement.key and found is None:
            return item  # a key value is missing: the validate pipeline rejects those
        digest = key_digest(placement.table, key)
        if digest not in self.seen:
            self.seen.add(digest)
            return item
        self.crawler.stats.inc_value(DUPLICATES)
        if found is None:
            described = f"the same content in {placement.table}"
        else:
            pairs = zip(placement.key, found, strict=True)
            described = ", ".join(f"{name}={value!r}" for name, value in pairs)
        raise DropItem(f"duplicate of {described}", log_level="DEBUG")
