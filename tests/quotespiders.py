"""Spiders in the shape of the Scrapy tutorial's quotes spider, one per item type, for
``tests/test_any_items.py`` (loaded with ``-s SPIDER_MODULES=tests.quotespiders``).

Each takes the site with ``-a url=…`` and follows the "Next" links: 100 quotes on 10 pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import pydantic
import scrapy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from scrapy.http import Response


class _Quotes(scrapy.Spider):
    url = ""

    async def start(self) -> AsyncIterator[Any]:
        yield scrapy.Request(self.url, callback=self.parse)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        for quote in response.css("div.quote"):
            yield self.item(
                text=quote.css("span.text::text").get(),
                author=quote.css("small.author::text").get(),
                tags=quote.css("div.tags a.tag::text").getall(),
            )
        yield from response.follow_all(css="li.next a", callback=self.parse)

    def item(self, **values: Any) -> Any:
        return values


class DictQuotes(_Quotes):
    """The tutorial's spider as it is: dict items."""

    name = "quotes"


class QuoteItem(scrapy.Item):
    """A ``scrapy.Item`` whose fields declare no types."""

    text = scrapy.Field()
    author = scrapy.Field()
    tags = scrapy.Field()


class ItemQuotes(_Quotes):
    name = "item_quotes"

    def item(self, **values: Any) -> Any:
        return QuoteItem(**values)


@dataclass
class QuoteRecord:
    """A declared dataclass item with its own table and key."""

    table: ClassVar[str] = "quote_records"
    key: ClassVar[tuple[str, ...]] = ("text",)

    text: str | None = None
    author: str | None = None
    tags: list[str] = field(default_factory=list)


class DataclassQuotes(_Quotes):
    name = "dataclass_quotes"

    def item(self, **values: Any) -> Any:
        return QuoteRecord(**values)


@attrs.define
class AttrsQuote:
    """An attrs item with declared types (no table or key: snake_case name, content hash)."""

    text: str | None = None
    author: str | None = None
    tags: list[str] = attrs.Factory(list)


class AttrsQuotes(_Quotes):
    name = "attrs_quotes"

    def item(self, **values: Any) -> Any:
        return AttrsQuote(**values)


class PydanticQuote(pydantic.BaseModel):
    """A pydantic model: its own validation runs on every item."""

    text: str
    author: str
    tags: list[str] = []


class PydanticQuotes(_Quotes):
    name = "pydantic_quotes"

    def item(self, **values: Any) -> Any:
        return PydanticQuote(**values)


def odd_items() -> list[Any]:
    """Items a user's spider may well yield: awkward keys, 2,000 keys, a 50 MB string, a value
    that changes type, nesting 100 deep, None everywhere, bytes, lone surrogates."""
    deep: Any = "bottom"
    for _ in range(100):
        deep = [deep]
    return [
        {
            "case": "awkward",
            "first name": 1,
            '"; DROP TABLE runs; --': 2,
            "": 3,
            "Name": 4,
            "name": 5,
            "rowid": 6,
            "row_hash": 7,
            "Café ☕": 8,
        },
        {"case": "wide", **{f"key {n}": n for n in range(2000)}},
        {"case": "huge", "text": "x" * 50_000_000},
        {"case": "typed", "value": 1},
        {"case": "retyped", "value": "abc"},
        {"case": "deep", "value": deep},
        {"case": "none", "value": None, "other": None},
        {"case": "bytes", "raw": b"\xff\x00"},
        {"case": "surrogate", "text": "lone \ud800"},
    ]


class OddItems(scrapy.Spider):
    """Yields ``odd_items()`` from the site's first page."""

    name = "odd_items"
    url = ""

    async def start(self) -> AsyncIterator[Any]:
        yield scrapy.Request(self.url, callback=self.parse)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        yield from odd_items()
