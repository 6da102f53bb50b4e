"""ValidatePipeline: invalid items are rejected with one line that names every bad field."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from crawler.exceptions import RejectItem
from crawler.items import PageItem, ProductItem
from crawler.pipelines.validate import ValidatePipeline
from crawler.stats import REJECTED

pytestmark = pytest.mark.timeout(10)


def pipeline(**settings: Any) -> ValidatePipeline:
    return ValidatePipeline.from_crawler(get_crawler(settings_dict=settings))


def product(**fields: Any) -> ProductItem:
    values: dict[str, Any] = {
        "sku": "A1",
        "name": "Mill",
        "price": Decimal("12.50"),
        "currency": "EUR",
        "in_stock": True,
        "rating": 4.5,
        "url": "http://shop.test/p/1",
        "image_urls": ["http://shop.test/a.jpg"],
    }
    return ProductItem(**{**values, **fields})


def reason(pipe: ValidatePipeline, item: Any) -> str:
    with pytest.raises(RejectItem) as caught:
        pipe.process_item(item)
    assert caught.value.reason == str(caught.value)
    return caught.value.reason


def test_valid_items_pass() -> None:
    pipe = pipeline()
    item = product()
    assert pipe.process_item(item) is item
    assert pipe.process_item(product(rating=4, in_stock=None, image_urls=[])) is not None
    page = PageItem(url="http://a.test/", fetched_at=datetime.now(UTC), status=200)
    assert pipe.process_item(page) is page
    assert pipe.crawler.stats.get_stats() == {}


def test_reason_names_every_bad_field() -> None:
    pipe = pipeline()
    item = product(price="Price on request", name=None, in_stock=1, sku="  ")
    assert reason(pipe, item) == (
        "sku: missing; name: missing; price: expected Decimal, got str 'Price on request'; "
        "in_stock: expected bool, got int 1"
    )
    assert pipe.crawler.stats.get_stats() == {
        REJECTED: 1,
        f"{REJECTED}/sku": 1,
        f"{REJECTED}/name": 1,
        f"{REJECTED}/price": 1,
        f"{REJECTED}/in_stock": 1,
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"rating": True}, "rating: expected float, got bool True"),
        ({"rating": float("nan")}, "rating: expected float, got float nan"),
        ({"price": 12}, "price: expected Decimal, got int 12"),
        ({"price": Decimal("NaN")}, "price: expected Decimal, got Decimal Decimal('NaN')"),
        ({"image_urls": ["a", 5]}, "image_urls[1]: expected str, got int 5"),
        ({"image_urls": "a"}, "image_urls: expected list, got str 'a'"),
        ({"url": ""}, "url: missing"),
        ({"price": "x" * 100}, f"price: expected Decimal, got str '{'x' * 59}"),
    ],
)
def test_reasons(fields: dict[str, Any], expected: str) -> None:
    assert reason(pipeline(), product(**fields)) == expected


def test_text_longer_than_the_limit() -> None:
    pipe = pipeline(VALIDATE_MAX_FIELD_CHARS=25)
    assert pipe.process_item(product(description="x" * 25)) is not None
    item = product(description="x" * 26, image_urls=["y" * 27])
    assert reason(pipe, item) == (
        "description: 26 chars, more than 25; image_urls[0]: 27 chars, more than 25"
    )


def test_natural_key_is_required_even_when_the_field_is_not() -> None:
    @dataclass
    class Listing:
        key = ("slug",)
        slug: str | None = None
        title: str | None = None

    assert reason(pipeline(), Listing(title="t")) == "slug: missing"


def test_dict_items_without_a_schema_are_valid() -> None:
    pipe = pipeline()
    item = {"title": "x"}  # no url, no declared key: B's store keys it by content
    assert pipe.process_item(item) is item
    assert pipe.crawler.stats.get_stats() == {}


def test_one_warning_per_item_and_scrapy_s_own_line_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="crawler"), pytest.raises(RejectItem) as caught:
        pipeline().process_item(product(price="Price on request", currency=None))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "Rejected ProductItem http://shop.test/p/1: "
        "price: expected Decimal, got str 'Price on request'; currency: missing"
    )
    assert record.exc_info is None
    assert caught.value.log_level == "DEBUG"


def test_disabled() -> None:
    with pytest.raises(NotConfigured, match="VALIDATE_ENABLED"):
        pipeline(VALIDATE_ENABLED=False)
