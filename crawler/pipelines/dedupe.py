"""``DedupePipeline``: keep one item per natural key and item class in a run.

Settings: ``DEDUPE_ENABLED``. The key is ``item_key(type(item))`` (``sku`` for products, ``url``
for pages). A repeat is dropped with ``DropItem("duplicate of sku='A1'")`` at DEBUG level and
counted in ``dedupe/dropped``. Memory stays small: a 16-byte digest per key, not the item.
Items with a missing key value pass (the validate pipeline rejects those when it is on).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy.exceptions import DropItem, NotConfigured

from crawler import defaults
from crawler.items import item_key
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


def key_digest(item_cls: type, values: tuple[Any, ...]) -> bytes:
    """16 bytes that stand for one natural key of one item class."""
    text = repr((item_cls.__module__, item_cls.__qualname__, values))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class DedupePipeline:
    """Drops the second and later items with the same natural key (``DEDUPE_ENABLED``)."""

    def __init__(self, crawler: Crawler, config: DedupeConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.seen: set[bytes] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DedupePipeline:
        return cls(crawler, DedupeConfig.from_settings(crawler.settings))

    def process_item(self, item: Any) -> Any:
        if not dataclasses.is_dataclass(item) or isinstance(item, type):
            return item
        adapter = ItemAdapter(item)
        key = item_key(type(item))
        values = tuple(adapter.get(name) for name in key)
        if any(value is None for value in values):
            return item
        digest = key_digest(type(item), values)
        if digest not in self.seen:
            self.seen.add(digest)
            return item
        self.crawler.stats.inc_value(DUPLICATES)
        described = ", ".join(f"{name}={value!r}" for name, value in zip(key, values, strict=True))
        raise DropItem(f"duplicate of {described}", log_level="DEBUG")
