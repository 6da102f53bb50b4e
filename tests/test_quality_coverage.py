"""The coverage counter of ``crawler.quality.coverage``: one counting for the crawl's
``FieldCoverage`` and the ingester of a Redis crawl (items that arrive as stream entries)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import scrapy
from scrapy import Spider
from scrapy.utils.test import get_crawler

from crawler.extensions.coverage import FieldCoverage
from crawler.frontier.ingest import count_item
from crawler.frontier.itemstream import FIELD, StreamItem, item_entry, read_entry
from crawler.itemtables import TableRules, item_values, row_key
from crawler.quality.coverage import CoverageCounter
from crawler.stats import COVERAGE, COVERAGE_OTHER


@dataclasses.dataclass
class Book:
    title: str | None = None
    price: float | None = None
    tags: list[str] = dataclasses.field(default_factory=list)


class ScrapyBook(scrapy.Item):
    title = scrapy.Field(type=str)
    author = scrapy.Field(type=str)


def stream_item(item: Any, rules: TableRules) -> StreamItem:
    """The item as ``scrapy ingest`` gets it: through a stream entry's JSON."""
    placement = rules.place(item)
    values = item_values(item)
    at = datetime.now(UTC).isoformat()
    text = item_entry(type(item).__name__, placement, values, row_key(placement, values), at)
    found = read_entry({FIELD: text})
    assert isinstance(found, StreamItem)
    return found


def test_the_ingester_counts_stream_items_as_the_crawl_counts_items() -> None:
    crawler = get_crawler(Spider, settings_dict={"COVERAGE_MAX_FIELDS": 4})
    crawler.spider = Spider("shelf")
    crawler.stats.open_spider()
    ext = FieldCoverage.from_crawler(crawler)
    assert isinstance(ext.counter, CoverageCounter)  # the extension counts with the counter
    items: list[Any] = [
        Book("A", 9.5, ["x"]), Book(" ", None, []), Book(None),
        ScrapyBook(title="E"), ScrapyBook(title="", author="F"),  # unset fields count as empty
        {"title": "G", "extra": None}, {"title": None, "a": 1, "b": 2, "c": 3, "d": 4},
    ]  # fmt: skip
    rules = TableRules.from_settings(crawler.settings, crawler.spider)
    counter = CoverageCounter(max_fields=4)
    for item in items:
        ext.item_scraped(item)
        count_item(counter, stream_item(item, rules))
    ext.spider_closed(crawler.spider)
    crawled = crawler.stats.get_value(COVERAGE)
    assert counter.coverage() == crawled
    assert crawled == {
        "book": {"items": 3, "fields": {"title": 1, "price": 1, "tags": 1}},
        "scrapy_book": {"items": 2, "fields": {"title": 1, "author": 1}},
        # the dict keys past COVERAGE_MAX_FIELDS: their filled values summed
        "shelf": {"items": 2, "fields": {"title": 1, "extra": 0, "a": 1, "b": 1,
                                         COVERAGE_OTHER: 2}},
    }  # fmt: skip


def test_counter_alone() -> None:
    counter = CoverageCounter(max_fields=10)
    assert not counter and counter.coverage() == {}
    counter.add("t", [("x", "a"), ("y", "")])
    counter.add("t", [("x", None), ("y", [1])])
    assert counter
    assert counter.coverage() == {"t": {"items": 2, "fields": {"x": 1, "y": 1}}}
