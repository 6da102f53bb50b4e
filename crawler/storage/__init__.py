"""The SQLite store, and the one ``Store`` the components of a crawl share."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from scrapy.exceptions import CloseSpider

from crawler.storage.store import Store, StoreConfig, StoreError, open_store

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

__all__ = [
    "STORE_ERROR",
    "Store",
    "StoreConfig",
    "StoreError",
    "open_for_crawl",
    "open_store",
    "store_for",
]

logger = logging.getLogger(__name__)

STORE_ERROR = "store_error"  # the finish reason of a crawl whose store failed
_stores: WeakKeyDictionary[Crawler, Store] = WeakKeyDictionary()


def store_for(crawler: Crawler) -> Store:
    """The crawler's store (not opened yet), the same object for every component.

    Raises ``NotConfigured`` when ``SQLITE_ENABLED`` is off, ``ValueError`` on a bad setting.
    """
    store = _stores.get(crawler)
    if store is None:
        store = _stores[crawler] = Store(StoreConfig.from_settings(crawler.settings), crawler.stats)
    return store


def open_for_crawl(store: Store) -> None:
    """Open ``store``, or log why it cannot open (once) and ask Scrapy to close the spider."""
    first_attempt = store.open_error is None
    try:
        store.open()
    except StoreError as exc:
        if first_attempt:
            logger.error(f"SQLite store unavailable: {exc}")
        raise CloseSpider(STORE_ERROR) from exc
