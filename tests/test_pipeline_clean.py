"""CleanPipeline: raw scraped text in, typed and normalised fields out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from crawler.items import PageItem, ProductItem
from crawler.pipelines.clean import CleanPipeline, is_url_field

pytestmark = pytest.mark.timeout(10)


def pipeline(**settings: Any) -> CleanPipeline:
    return CleanPipeline.from_crawler(get_crawler(settings_dict=settings))


def stats(pipe: CleanPipeline) -> dict[str, Any]:
    return pipe.crawler.stats.get_stats()


def raw_product(**fields: Any) -> ProductItem:
    values: dict[str, Any] = {
        "sku": "  SKU-1 ",
        "name": "Salt &amp;amp; Pepper\u00a0Mill\n",
        "price": "$1,234.56",
        "currency": "USD",
        "in_stock": "In stock",
        "rating": "4.5 out of 5",
        "category": "  Kitchen ",
        "description": "Grinds\x0b  salt\tand\r\npepper.",
        "url": "HTTP://Shop.Example/products/1#reviews",
        "image_urls": [" http://shop.example/a.jpg ", "", "http://shop.example/a.jpg", None],
    }
    return ProductItem(**{**values, **fields})


def test_product_fields_become_typed_and_clean() -> None:
    pipe = pipeline()
    item = pipe.process_item(raw_product())
    assert item == ProductItem(
        sku="SKU-1",
        name="Salt & Pepper Mill",
        price=Decimal("1234.56"),
        currency="USD",
        in_stock=True,
        rating=4.5,
        category="Kitchen",
        description="Grinds salt and pepper.",
        url="http://shop.example/products/1",
        image_urls=["http://shop.example/a.jpg"],
    )
    assert stats(pipe) == {}


def test_values_of_the_right_type_pass_unchanged() -> None:
    price = Decimal("12.50")
    item = pipeline().process_item(raw_product(price=price, in_stock=False, rating=4))
    assert item.price is price
    assert item.in_stock is False
    assert item.rating == 4 and type(item.rating) is int  # an int is a fine float


def test_numbers_from_the_spider_become_the_declared_type() -> None:
    item = pipeline().process_item(raw_product(price=0.1, sku=12345, in_stock=1))
    assert item.price == Decimal("0.1")  # from the float's text, not its binary value
    assert item.sku == "12345"
    assert item.in_stock is True


def test_a_bool_is_never_a_number() -> None:
    pipe = pipeline()
    item = pipe.process_item(raw_product(price=True))
    assert item.price is True  # left for the validate pipeline to reject
    assert stats(pipe)["clean/coerce_failed/price"] == 1


def test_unparseable_values_stay_and_are_counted() -> None:
    pipe = pipeline()
    item = pipe.process_item(raw_product(price="Price on request", in_stock="ask us"))
    assert item.price == "Price on request"
    assert item.in_stock == "ask us"
    assert stats(pipe) == {
        "clean/coerce_failed": 2,
        "clean/coerce_failed/price": 1,
        "clean/coerce_failed/in_stock": 1,
    }


def test_blank_text_becomes_none() -> None:
    pipe = pipeline()
    item = pipe.process_item(raw_product(price="  ", category="&nbsp;", rating=""))
    assert (item.price, item.category, item.rating) == (None, None, None)
    assert stats(pipe) == {}


def test_page_fields() -> None:
    raw: dict[str, Any] = {  # as a spider hands them over: text in typed fields
        "url": "https://Example.test:443/a?b=2&a=1#top",
        "final_url": "https://example.test/a?b=2&a=1",
        "canonical": "https://EXAMPLE.test/a",
        "status": "200",
        "word_count": "1,234",
        "response_time": "0.25",
        "fetched_at": "2024-05-06T07:08:09+02:00",
        "title": "\n  Hello\u2009World  ",
    }
    item = PageItem(**raw)
    item = pipeline().process_item(item)
    assert item.url == "https://example.test/a?b=2&a=1"  # query order kept
    assert item.canonical == "https://example.test/a"
    assert (item.status, item.word_count, item.response_time) == (200, 1234, 0.25)
    assert item.fetched_at == datetime(2024, 5, 6, 5, 8, 9, tzinfo=UTC)
    assert item.title == "Hello World"


def test_a_single_string_for_a_list_field_becomes_a_list() -> None:
    item = pipeline().process_item(raw_product(image_urls="http://shop.example/b.jpg#x"))
    assert item.image_urls == ["http://shop.example/b.jpg"]


def test_frozen_items_are_replaced() -> None:
    @dataclass(frozen=True)
    class Frozen:
        url: str | None = None
        count: int | None = None

    raw: dict[str, Any] = {"url": " http://a.test ", "count": "7"}
    item = pipeline().process_item(Frozen(**raw))
    assert item == Frozen(url="http://a.test/", count=7)


def test_dict_items_are_cleaned_in_place_without_coercion() -> None:
    item = {"url": "  HTTP://A.test ", "count": " 7 "}  # no declared types: text stays text
    assert pipeline().process_item(item) is item
    assert item == {"url": "http://a.test/", "count": "7"}


def test_non_items_pass_untouched() -> None:
    item = ["  x "]
    assert pipeline().process_item(item) is item
    assert item == ["  x "]


def test_url_fields() -> None:
    assert all(map(is_url_field, ["url", "final_url", "canonical", "image_urls"]))
    assert not any(map(is_url_field, ["title", "urlish", "content_type"]))


def test_disabled() -> None:
    with pytest.raises(NotConfigured, match="CLEAN_ENABLED"):
        pipeline(CLEAN_ENABLED=False)
