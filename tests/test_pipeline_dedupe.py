"""DedupePipeline: one item per natural key and item class in a run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from scrapy import Spider
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.logformatter import LogFormatter
from scrapy.utils.test import get_crawler

from crawler.items import PageItem, ProductItem
from crawler.pipelines.dedupe import DedupePipeline
from crawler.stats import DUPLICATES

pytestmark = pytest.mark.timeout(10)


def pipeline(**settings: Any) -> DedupePipeline:
    return DedupePipeline.from_crawler(get_crawler(settings_dict=settings))


def test_repeats_of_a_key_are_dropped_and_counted() -> None:
    pipe = pipeline()
    first = ProductItem(sku="A1", name="Mill", price=Decimal("1"))
    assert pipe.process_item(first) is first
    assert pipe.process_item(ProductItem(sku="B2")) is not None
    for _ in range(3):
        with pytest.raises(DropItem, match=r"^duplicate of sku='A1'$"):
            pipe.process_item(ProductItem(sku="A1", name="Other name"))
    assert pipe.crawler.stats.get_stats() == {DUPLICATES: 3}
    assert len(pipe.seen) == 2
    assert all(len(digest) == 16 for digest in pipe.seen)


def test_keys_are_per_item_class() -> None:
    pipe = pipeline()
    pipe.process_item(PageItem(url="http://a.test/"))

    @dataclass
    class Link:
        url: str | None = None  # default key: url

    assert pipe.process_item(Link(url="http://a.test/")) is not None
    with pytest.raises(DropItem, match=r"^duplicate of url='http://a.test/'$"):
        pipe.process_item(PageItem(url="http://a.test/", status=404))


def test_composite_keys() -> None:
    @dataclass
    class Offer:
        key = ("shop", "sku")
        shop: str | None = None
        sku: str | None = None

    pipe = pipeline()
    pipe.process_item(Offer("s1", "A"))
    pipe.process_item(Offer("s2", "A"))
    with pytest.raises(DropItem, match=r"^duplicate of shop='s1', sku='A'$"):
        pipe.process_item(Offer("s1", "A"))


def test_items_without_a_key_value_pass() -> None:
    pipe = pipeline()
    assert pipe.process_item(ProductItem(sku=None)) is not None
    assert pipe.process_item(ProductItem(sku=None)) is not None
    assert pipe.process_item({"sku": "A1"}) == {"sku": "A1"}
    assert pipe.crawler.stats.get_stats() == {}


def test_duplicates_are_logged_at_debug() -> None:
    crawler = get_crawler()
    spider = Spider.from_crawler(crawler, name="shop")
    pipe = DedupePipeline.from_crawler(crawler)
    pipe.process_item(ProductItem(sku="A1"))
    with pytest.raises(DropItem) as caught:
        pipe.process_item(ProductItem(sku="A1"))
    logged = LogFormatter().dropped(ProductItem(sku="A1"), caught.value, None, spider)
    assert logged["level"] == logging.DEBUG


def test_disabled() -> None:
    with pytest.raises(NotConfigured, match="DEDUPE_ENABLED"):
        pipeline(DEDUPE_ENABLED=False)
