"""Declared datetime fields: ISO first, then written dates (dateparser); ambiguous ones rejected."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from scrapy.utils.test import get_crawler

from crawler.cleaning import ambiguous_date, parse_datetime
from crawler.exceptions import RejectItem
from crawler.pipelines.clean import CleanPipeline
from crawler.pipelines.validate import ValidatePipeline

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Nov 25, 2026", datetime(2026, 11, 25, tzinfo=UTC)),
        ("25.11.2026", datetime(2026, 11, 25, tzinfo=UTC)),
        ("25 November 2026", datetime(2026, 11, 25, tzinfo=UTC)),
        ("2026-11-25T10:00:00Z", datetime(2026, 11, 25, 10, tzinfo=UTC)),
        ("11/25/2026", datetime(2026, 11, 25, tzinfo=UTC)),  # 25 cannot be a month
        ("04/04/2026", datetime(2026, 4, 4, tzinfo=UTC)),  # either order: the same day
        ("2026/03/04", datetime(2026, 3, 4, tzinfo=UTC)),  # year first: year-month-day
        ("Tuesday, 3 March 2026 10:15", datetime(2026, 3, 3, 10, 15, tzinfo=UTC)),  # no zone: UTC
        ("25 Nov 2026 10:00 +0200", datetime(2026, 11, 25, 8, tzinfo=UTC)),
        ("25 novembre 2026", datetime(2026, 11, 25, tzinfo=UTC)),
        ("03/04/2026", None),  # 3 April or March 4: not guessed
        ("Nov 2026", None),  # no day: not filled in from today
        ("yesterday", None),  # relative: depends on when it is read
        ("Price on request", None),
        ("12", None),
    ],
)
def test_written_dates(raw: str, expected: datetime | None) -> None:
    value = parse_datetime(raw)
    assert value == expected
    assert value is None or value.tzinfo is UTC


@pytest.mark.parametrize(
    ("order", "expected"),
    [("DMY", datetime(2026, 4, 3, tzinfo=UTC)), ("MDY", datetime(2026, 3, 4, tzinfo=UTC))],
)
def test_a_date_order_resolves_ambiguous_dates(order: str, expected: datetime) -> None:
    assert parse_datetime("03/04/2026", order) == expected
    assert parse_datetime("03.04.2026 10:00", order) == expected.replace(hour=10)
    assert not ambiguous_date("03/04/2026", order)


def test_which_dates_are_ambiguous() -> None:
    assert ambiguous_date("03/04/2026")
    assert ambiguous_date(" 3-4-26 ")
    assert not ambiguous_date("25.11.2026")
    assert not ambiguous_date("04/04/2026")
    assert not ambiguous_date("2026-03-04")
    assert not ambiguous_date("Nov 25, 2026")


@dataclass
class Post:
    url: str | None = field(default=None, metadata={"required": True})
    published: datetime | None = None


def through(item: Any, **settings: Any) -> Any:
    crawler = get_crawler(settings_dict=settings)
    clean = CleanPipeline.from_crawler(crawler)
    validate = ValidatePipeline.from_crawler(crawler)
    return validate.process_item(clean.process_item(item))


def test_a_written_date_in_a_declared_field_becomes_a_datetime() -> None:
    item = through(Post(url="http://a.test/", published="Nov 25, 2026"))
    assert item.published == datetime(2026, 11, 25, tzinfo=UTC)


def test_an_ambiguous_date_is_rejected_with_the_reason() -> None:
    with pytest.raises(RejectItem) as caught:
        through(Post(url="http://a.test/", published="03/04/2026"))
    assert caught.value.reason == "published: ambiguous date '03/04/2026' (day-month or month-day?)"


@pytest.mark.parametrize(("order", "month"), [("DMY", 4), ("MDY", 3)])
def test_clean_date_order_resolves_them(order: str, month: int) -> None:
    item = through(Post(url="http://a.test/", published="03/04/2026"), CLEAN_DATE_ORDER=order)
    assert item.published.month == month


def test_a_bad_date_order_stops_the_crawl_at_start() -> None:
    with pytest.raises(ValueError, match="CLEAN_DATE_ORDER must be one of 'DMY', 'MDY' or ''"):
        through(Post(), CLEAN_DATE_ORDER="YDM")
