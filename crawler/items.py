"""Items the crawler produces, as dataclasses read through ``ItemAdapter``.

Each item class declares:

* ``table``: the SQLite table (and CSV name) its rows go to;
* ``key``: its natural key, the fields that identify one real-world thing, used by the
  dedupe pipeline and for upserts in the store;
* field types through annotations (``Decimal``, ``int``, ``float``, ``bool``, ``datetime``,
  ``list[str]``, ``str``), which the clean pipeline coerces to and the validate pipeline checks;
* required fields with ``metadata={"required": True}``;
* volatile fields with ``metadata={"volatile": True}``: values that differ on every fetch of the
  same content (fetch time, latency); they are stored but do not count towards the row hash, so
  they never make a row "changed".

A user's own item only needs the same three things; the pipelines and the store adapt to it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

REQUIRED = {"required": True}
VOLATILE = {"volatile": True}


@dataclass(frozen=True)
class FieldSpec:
    """What the pipelines need to know about one field of an item class."""

    name: str
    type: type  # the scalar type: str, int, float, bool, Decimal, datetime or list
    required: bool
    volatile: bool = False  # excluded from the row hash: it changes with every fetch


@dataclass
class PageItem:
    """One fetched URL: what a page says about itself, or why it could not be fetched."""

    table: ClassVar[str] = "pages"
    key: ClassVar[tuple[str, ...]] = ("url",)

    url: str | None = field(default=None, metadata=REQUIRED)
    final_url: str | None = None
    status: int | None = None
    title: str | None = None
    meta_description: str | None = None
    h1: str | None = None
    canonical: str | None = None
    language: str | None = None
    word_count: int | None = None
    internal_links: int | None = None
    external_links: int | None = None
    content_type: str | None = None
    content_length: int | None = None
    content_hash: str | None = None
    response_time: float | None = field(default=None, metadata=VOLATILE)
    fetched_at: datetime | None = field(default=None, metadata=REQUIRED | VOLATILE)
    fetched_with: str | None = "http"
    error: str | None = None


@dataclass
class ProductItem:
    """One product of a catalog, with typed price, stock and rating."""

    table: ClassVar[str] = "products"
    key: ClassVar[tuple[str, ...]] = ("sku",)

    sku: str | None = field(default=None, metadata=REQUIRED)
    name: str | None = field(default=None, metadata=REQUIRED)
    price: Decimal | None = field(default=None, metadata=REQUIRED)
    currency: str | None = field(default=None, metadata=REQUIRED)
    in_stock: bool | None = None
    rating: float | None = None
    category: str | None = None
    description: str | None = None
    url: str | None = field(default=None, metadata=REQUIRED)
    image_urls: list[str] = field(default_factory=list)
    fetched_with: str | None = "http"  # "browser" when the page was rendered in Chromium


_SCALARS: tuple[type, ...] = (str, int, float, bool, Decimal, datetime, list)


def _scalar_type(hint: Any) -> type:
    """``Decimal | None`` -> ``Decimal``; ``list[str]`` -> ``list``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported field type {hint!r}: use one type or 'T | None'")
        return _scalar_type(args[0])
    if origin is not None:
        hint = origin
    if hint not in _SCALARS:
        raise TypeError(f"unsupported field type {hint!r}; use one of {_SCALARS}")
    return typing.cast("type", hint)


@cache
def field_specs(item_cls: type) -> tuple[FieldSpec, ...]:
    """The fields of a dataclass item class, in declaration order."""
    if not dataclasses.is_dataclass(item_cls):
        raise TypeError(f"{item_cls.__name__} is not a dataclass item")
    hints = typing.get_type_hints(item_cls)
    return tuple(
        FieldSpec(
            f.name,
            _scalar_type(hints[f.name]),
            bool(f.metadata.get("required")),
            bool(f.metadata.get("volatile")),
        )
        for f in dataclasses.fields(item_cls)
    )


def item_table(item_cls: type) -> str:
    """The table an item class is stored in (its ``table`` or its lower-cased name)."""
    return str(getattr(item_cls, "table", item_cls.__name__.lower()))


def item_key(item_cls: type) -> tuple[str, ...]:
    """The natural key fields of an item class (default: ``url``)."""
    return tuple(getattr(item_cls, "key", ("url",)))
