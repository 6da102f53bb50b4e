"""``FieldCoverage``: per item table, how many items were kept and how many had each field filled.

Settings: ``COVERAGE_ENABLED``, ``COVERAGE_MAX_FIELDS``. Counts every item that reached the end of
the pipelines (``item_scraped``), in the table the store puts it in (``crawler.itemtables``), for
any item type ``itemadapter`` reads: a class's declared fields all count (unset ones as empty), a
dict's keys as they come. A value is filled unless it is None, a blank string or an empty
list/dict/tuple/set. A table tracks its first ``COVERAGE_MAX_FIELDS`` fields; the filled values of
any later ones are summed as ``stats.COVERAGE_OTHER`` (dicts with free-form keys stay bounded).
At close it publishes ``stats.COVERAGE`` (``{table: {"items": n, "fields": {field: filled}}}``),
which the health monitor's checks read and the run recorder stores (``field_coverage``).
The counting itself is ``crawler.quality.coverage.CoverageCounter`` (no Scrapy), which ``scrapy
ingest`` uses too for the items of a Redis crawl; this extension reads each item type's values.

It runs on every item: per item a dict lookup of its class and one loop over its fields.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy import Item, signals
from scrapy.exceptions import NotConfigured

from crawler import defaults
from crawler import stats as keys
from crawler.itemtables import TableRules
from crawler.quality.coverage import CoverageCounter, TableCoverage, filled

__all__ = ["FieldCoverage", "filled"]

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class _Kind:
    """How the items of one class are read, and the table they count in."""

    __slots__ = ("names", "table", "values")

    def __init__(self, table: TableCoverage, names: tuple[str, ...] | None, values: str) -> None:
        self.table = table
        self.names = names  # declared fields; None: a mapping's own keys
        self.values = values  # "keys" (a dict), "get" (a scrapy.Item), "attr" (other classes)


class FieldCoverage:
    """Counts filled fields per item table; publishes ``stats.COVERAGE`` at close."""

    def __init__(self, crawler: Crawler, max_fields: int) -> None:
        self.crawler = crawler
        self.max_fields = max_fields
        self.counter = CoverageCounter(max_fields)  # the counting (crawler.quality.coverage)
        self._kinds: dict[type, _Kind | None] = {}
        self._rules: TableRules | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FieldCoverage:
        settings = crawler.settings
        if not settings.getbool("COVERAGE_ENABLED", defaults.COVERAGE_ENABLED):
            raise NotConfigured("COVERAGE_ENABLED is off")
        max_fields = settings.getint("COVERAGE_MAX_FIELDS", defaults.COVERAGE_MAX_FIELDS)
        ext = cls(crawler, max_fields)  # ValueError when the cap is under 1
        crawler.signals.connect(ext.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def item_scraped(self, item: Any) -> None:
        kind = self._kinds.get(type(item), _UNKNOWN)
        if kind is _UNKNOWN:
            kind = self._kinds[type(item)] = self._kind(item)
        if kind is None:
            return  # no item type: the store keeps it in unplaced_items
        table = kind.table
        table.items += 1
        if kind.values == "keys":
            for name, value in item.items():
                table.count(name, value)
        elif kind.values == "get":
            for name in kind.names or ():
                table.count(name, item.get(name))
        else:
            for name in kind.names or ():
                table.count(name, getattr(item, name, None))

    def _kind(self, item: Any) -> _Kind | None:
        if self._rules is None:
            self._rules = TableRules.from_settings(self.crawler.settings, self.crawler.spider)
        try:
            placement = self._rules.place(item)
        except TypeError:
            return None
        table = self.counter.table(placement.table)
        declared = ItemAdapter.get_field_names_from_class(type(item))
        if isinstance(item, Item):
            return _Kind(table, tuple(declared or ()), "get")
        if declared is None or isinstance(item, Mapping):
            return _Kind(table, None, "keys")
        return _Kind(table, tuple(declared), "attr")

    def coverage(self) -> dict[str, dict[str, Any]]:
        return self.counter.coverage()

    def spider_closed(self, spider: Spider) -> None:
        stats = self.crawler.stats
        assert stats is not None
        if self.counter:
            stats.set_value(keys.COVERAGE, self.coverage())


_UNKNOWN: Any = object()
