"""Every item type itemadapter supports: declared fields, cleaning and validation.

``field_specs`` reads the declared fields of dataclasses, attrs classes, pydantic models and
``scrapy.Item`` classes whose ``Field`` metadata declares a type; the clean and validate
pipelines take any item (dicts included) through ``ItemAdapter``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Optional

import attr
import attrs
import pydantic
import pytest
import scrapy
from scrapy import Spider
from scrapy.utils.test import get_crawler

from crawler.exceptions import RejectItem
from crawler.items import FieldSpec, field_specs
from crawler.pipelines.clean import CleanPipeline
from crawler.pipelines.validate import ValidatePipeline
from crawler.stats import REJECTED

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(20)


# --- The user's item classes, one of each kind ---------------------------------------------------


@attrs.define
class AttrsProduct:
    table: ClassVar[str] = "attrs_products"
    key: ClassVar[tuple[str, ...]] = ("sku",)

    sku: str | None = attrs.field(default=None, metadata={"required": True})
    price: Optional[Decimal] = None  # noqa: UP045 (the spelling users write)
    tags: list[str] = attrs.field(factory=list)
    fetched_at: datetime | None = attrs.field(default=None, metadata={"volatile": True})


@attrs.frozen
class FrozenAttrsProduct:
    sku: str | None = attrs.field(default=None, metadata={"required": True})
    price: Decimal | None = None


@attr.s
class OldStyleAttrs:  # attr.ib(type=...) without annotations
    sku = attr.ib(type=str, metadata={"required": True})
    count = attr.ib(type=int, default=None)


class PydanticProduct(pydantic.BaseModel):
    sku: str
    name: str | None = None
    price: Optional[Decimal] = None  # noqa: UP045
    currency: str | None = None
    tags: list[str] = []
    stock: int | None = pydantic.Field(default=None, ge=0)
    fetched_at: datetime | None = pydantic.Field(default=None, json_schema_extra={"volatile": True})

    @pydantic.field_validator("currency")
    @classmethod
    def upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class FrozenPydantic(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    url: str
    count: int | None = None


class TypedQuote(scrapy.Item):
    table = "typed_quotes"
    key = ("text",)

    text = scrapy.Field(type=str, required=True)
    price = scrapy.Field(type=Decimal, required=True)
    tags = scrapy.Field(type=list[str])
    count = scrapy.Field(type=int | None)
    seen_at = scrapy.Field(type="datetime", volatile=True)  # a type by name, as in a JSON setting


class Quote(scrapy.Item):  # Scrapy's tutorial item: no types, one required field
    text = scrapy.Field()
    author = scrapy.Field(required=True)
    tags = scrapy.Field()


class HalfTypedQuote(scrapy.Item):
    text = scrapy.Field(type=str)
    author = scrapy.Field()


@dataclass
class Book:
    title: str | None = field(default=None, metadata={"required": True})
    price: Decimal | None = None


# --- field_specs ---------------------------------------------------------------------------------


def test_a_dataclass_field_of_a_type_of_its_own_is_cleaned_not_coerced() -> None:
    @dataclass
    class Listing:
        title: str | None = None
        attributes: dict[str, str] | None = None  # not a column type: kept as it is, cleaned

    with pytest.raises(TypeError, match="unsupported field type"):
        field_specs(Listing)
    out = through(Listing(title=" T ", attributes={"colour": " red "}))
    assert out == Listing(title="T", attributes={"colour": "red"})


def test_field_specs_of_attrs_classes() -> None:
    assert field_specs(AttrsProduct) == (
        FieldSpec("sku", str, True),
        FieldSpec("price", Decimal, False),
        FieldSpec("tags", list, False),
        FieldSpec("fetched_at", datetime, False, volatile=True),
    )
    assert field_specs(OldStyleAttrs) == (
        FieldSpec("sku", str, True),
        FieldSpec("count", int, False),
    )


def test_field_specs_of_pydantic_models() -> None:
    # required: no default and None not allowed; volatile: json_schema_extra={"volatile": True}
    assert field_specs(PydanticProduct) == (
        FieldSpec("sku", str, True),
        FieldSpec("name", str, False),
        FieldSpec("price", Decimal, False),
        FieldSpec("currency", str, False),
        FieldSpec("tags", list, False),
        FieldSpec("stock", int, False),
        FieldSpec("fetched_at", datetime, False, volatile=True),
    )


def test_field_specs_of_a_scrapy_item_with_typed_fields() -> None:
    assert field_specs(TypedQuote) == (
        FieldSpec("text", str, True),
        FieldSpec("price", Decimal, True),
        FieldSpec("tags", list, False),
        FieldSpec("count", int, False),
        FieldSpec("seen_at", datetime, False, volatile=True),
    )


@pytest.mark.parametrize(
    ("item_cls", "message"),
    [
        (dict, "dict items have no declared fields"),
        (Quote, "Quote: no type declared for text, author, tags"),
        (HalfTypedQuote, "HalfTypedQuote: no type declared for author"),
        (int, "int is not an item class"),
    ],
)
def test_field_specs_refuses_classes_without_declared_types(item_cls: type, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        field_specs(item_cls)


def test_field_specs_refuses_an_unsupported_declared_type() -> None:
    class Odd(scrapy.Item):
        data = scrapy.Field(type=dict)

    with pytest.raises(TypeError, match="unsupported field type"):
        field_specs(Odd)


# --- clean -> validate, per item type ------------------------------------------------------------


class QuotesSpider(Spider):
    name = "quotes"


def pipelines(
    spider: type[Spider] = QuotesSpider, **settings: Any
) -> tuple[CleanPipeline, ValidatePipeline]:
    crawler = get_crawler(spider, settings_dict=settings)
    crawler.spider = spider.from_crawler(crawler)
    return CleanPipeline.from_crawler(crawler), ValidatePipeline.from_crawler(crawler)


def through(item: Any, spider: type[Spider] = QuotesSpider, **settings: Any) -> Any:
    clean, validate = pipelines(spider, **settings)
    return validate.process_item(clean.process_item(item))


def rejected(item: Any, spider: type[Spider] = QuotesSpider, **settings: Any) -> str:
    with pytest.raises(RejectItem) as caught:
        through(item, spider, **settings)
    return caught.value.reason


def test_a_plain_dict_without_schema_passes_cleaned() -> None:
    item = {
        "text": " \u201cThe world&nbsp;as we\n have created it\u201d ",
        "author": "Albert Einstein ",
        "tags": [" change ", "deep-thoughts", "  "],
        "about": {"born": " March 14, 1879 ", "urls": ["HTTP://Quotes.test/a#x"]},
        "url": "HTTP://Quotes.Test/page/1/#top",
        "count": 3,
        "price": "1.234,56 €",  # no declared type: cleaned text, not a number
        "raw": b"\x00bytes",
    }
    out = through(item)
    assert out == {
        "text": "\u201cThe world as we have created it\u201d",
        "author": "Albert Einstein",
        "tags": ["change", "deep-thoughts", None],
        "about": {"born": "March 14, 1879", "urls": ["http://quotes.test/a"]},
        "url": "http://quotes.test/page/1/",
        "count": 3,
        "price": "1.234,56 €",
        "raw": b"\x00bytes",
    }


def test_a_scrapy_item_missing_a_required_field_is_rejected() -> None:
    clean, validate = pipelines()
    with pytest.raises(RejectItem) as caught:
        validate.process_item(clean.process_item(Quote(text=" Hi ", tags=["a"])))
    assert caught.value.reason == "author: missing"
    assert validate.crawler.stats.get_value(f"{REJECTED}/author") == 1
    assert rejected(Quote(text="Hi", author="   ")) == "author: missing"
    assert through(Quote(text=" Hi ", author="A. Einstein")) == Quote(
        text="Hi", author="A. Einstein"
    )


def test_a_typed_scrapy_item_is_coerced_and_checked() -> None:
    out = through(TypedQuote(text=" Hi ", price="1.234,56 €", tags="love", count="12"))
    assert out == TypedQuote(text="Hi", price=Decimal("1234.56"), tags=["love"], count=12)
    assert rejected(TypedQuote(text="Hi", price="ask us")) == (
        "price: expected Decimal, got str 'ask us'"
    )


def test_a_dataclass_passes_with_coercion() -> None:
    item = Book(title=" Dune ", price="1.234,56 €")
    out = through(item)
    assert out is item  # mutable: changed in place
    assert out == Book(title="Dune", price=Decimal("1234.56"))
    assert rejected(Book(price="1")) == "title: missing"


def test_an_attrs_item_passes_with_coercion() -> None:
    item = AttrsProduct(sku=" A1 ", price="1.234,56 €", tags=[" x ", "x"])  # type: ignore[arg-type]
    out = through(item)
    assert out == AttrsProduct(sku="A1", price=Decimal("1234.56"), tags=["x"])
    assert rejected(AttrsProduct(price=Decimal(1))) == "sku: missing"


def test_a_frozen_attrs_item_is_replaced_not_mutated() -> None:
    item = FrozenAttrsProduct(sku=" A1 ", price="1.234,56 €")  # type: ignore[arg-type]
    out = through(item)
    assert out == FrozenAttrsProduct(sku="A1", price=Decimal("1234.56"))
    assert item.price == "1.234,56 €"


def test_a_pydantic_item_is_cleaned_through_its_own_validation() -> None:
    # model_construct skips validation, as a spider's later assignment would
    item = PydanticProduct.model_construct(sku=" A1 ", price="1.234,56 €", currency=" eur ")
    out = through(item)
    assert out is not item
    assert type(out) is PydanticProduct
    assert (out.sku, out.price, out.currency) == ("A1", Decimal("1234.56"), "EUR")  # validator ran


def test_a_frozen_pydantic_item_is_replaced() -> None:
    item = FrozenPydantic(url=" HTTP://A.test ", count=1)
    out = through(item)
    assert out == FrozenPydantic(url="http://a.test/", count=1)
    assert item.url == " HTTP://A.test "


def test_a_pydantic_item_with_a_bad_value_is_rejected_with_pydantic_s_message() -> None:
    item = PydanticProduct(sku="A1")
    item.price = "cheap"  # type: ignore[assignment]  # no validate_assignment: accepted
    item.stock = -1
    clean, validate = pipelines()
    with pytest.raises(RejectItem) as caught:
        validate.process_item(clean.process_item(item))
    assert caught.value.reason == (
        "price: Input should be a valid decimal; stock: Input should be greater than or equal to 0"
    )
    stats = validate.crawler.stats.get_stats()
    assert stats[f"{REJECTED}/price"] == stats[f"{REJECTED}/stock"] == 1


SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "maxLength": 20},
        "author": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["text", "author"],
}


def test_a_dict_violating_its_json_schema_is_rejected() -> None:
    settings = {"VALIDATE_JSON_SCHEMAS": {"quotes": SCHEMA}}  # by spider name
    item = {"text": "x" * 21, "tags": ["a", 2]}
    assert rejected(item, **settings) == (
        f"author: missing; tags[1]: 2 is not of type 'string'; text: '{'x' * 21}' is too long"
    )
    assert through({"text": " Hi ", "author": "A"}, **settings) == {"text": "Hi", "author": "A"}


def test_json_schemas_by_item_class_from_a_file_and_from_the_spider(tmp_path: Path) -> None:
    path = tmp_path / "quote.json"
    path.write_text(json.dumps(SCHEMA), encoding="utf-8")
    by_class = {"VALIDATE_JSON_SCHEMAS": {"Quote": str(path)}}
    assert rejected(Quote(author="A", tags=[1]), **by_class) == (
        "tags[0]: 1 is not of type 'string'; text: missing"
    )

    class SchemaSpider(Spider):
        name = "schema"
        item_schema = SCHEMA

    assert rejected({"text": "Hi"}, SchemaSpider) == "author: missing"
    assert through({"text": "Hi", "author": "B"}, SchemaSpider) == {"text": "Hi", "author": "B"}


def test_a_broken_json_schema_stops_the_crawl_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"VALIDATE_JSON_SCHEMAS\['quotes'\]: .*'strin'"):
        pipelines(VALIDATE_JSON_SCHEMAS={"quotes": {"type": "strin"}})
    with pytest.raises(ValueError, match="VALIDATE_JSON_SCHEMAS\\['x'\\]: cannot read"):
        pipelines(VALIDATE_JSON_SCHEMAS={"x": str(tmp_path / "missing.json")})


def test_every_text_value_of_a_dict_is_held_to_the_length_limit() -> None:
    item = {"text": "ok", "about": {"bio": "y" * 30}, "tags": ["a", "z" * 31]}
    assert rejected(item, VALIDATE_MAX_FIELD_CHARS=25) == (
        "about.bio: 30 chars, more than 25; tags[1]: 31 chars, more than 25"
    )


def test_deeply_nested_values_neither_crash_nor_lose_data() -> None:
    nested: Any = " deep "
    for _ in range(100):
        nested = [nested]
    out = through({"text": "Hi", "nested": nested})["nested"]
    for _ in range(100):
        out = out[0]
    assert out == "deep"


def test_datetimes_stay_aware_for_every_item_type() -> None:
    out = through(TypedQuote(text="Hi", price=1, seen_at="Nov 25, 2026"))
    assert out["seen_at"] == datetime(2026, 11, 25, tzinfo=UTC)


def test_an_invalid_pydantic_item_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    item = PydanticProduct.model_construct(sku="A1", price="cheap")
    with caplog.at_level(logging.WARNING, logger="crawler"), pytest.raises(RejectItem):
        through(item)
    (record,) = caplog.records
    assert record.getMessage().startswith("Rejected PydanticProduct: price: ")


def test_hostile_dict_values_are_cleaned_or_rejected_never_a_crash() -> None:
    item = {"none": None, "raw": b"\xff\xfe", "broken": "caf\udce9 \x00ok", "n": float("nan")}
    assert through(dict(item)) == {**item, "broken": "caf ok"}
    big = {"text": "x" * (50 * 1024 * 1024)}
    assert rejected(big) == "text: 52428800 chars, more than 100000"


def test_field_specs_refuses_a_class_without_fields_or_with_unresolvable_types() -> None:
    class Empty(scrapy.Item):
        pass

    @dataclass
    class Forward:
        thing: Missing | None = None  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(TypeError, match="Empty declares no fields"):
        field_specs(Empty)
    with pytest.raises(TypeError, match="Forward: cannot resolve a field type: name 'Missing'"):
        field_specs(Forward)
    assert through(Forward(thing=" x ")) == Forward(thing="x")  # type: ignore[arg-type]
