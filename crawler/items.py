"""Items the crawler produces, as dataclasses read through ``ItemAdapter``.

Each item class declares:

* ``table``: the SQLite table (and CSV name) its rows go to;
* ``key``: its natural key, the fields that identify one real-world thing, used by the
  dedupe pipeline and for upserts in the store;
* field types through annotations (``Decimal``, ``int``, ``float``, ``bool``, ``datetime``,
  ``list[str]``, ``str``, each maybe ``| None``), which the clean pipeline coerces to and the
  validate pipeline checks;
* required fields with ``metadata={"required": True}``;
* volatile fields with ``metadata={"volatile": True}``: values that differ on every fetch of the
  same content (fetch time, latency); they are stored but do not count towards the row hash, so
  they never make a row "changed".

A user's own item class declares the same things in its own way (``field_specs`` reads them):

* dataclass: annotations, ``field(metadata={"required": True, "volatile": True})``;
* attrs: annotations or ``attr.ib(type=…)``, ``attrs.field(metadata={…})`` with the same keys;
* pydantic (v2) model: annotations; a field is required when it has no default and does not
  admit ``None`` (or says ``json_schema_extra={"required": True}``); volatile with
  ``pydantic.Field(json_schema_extra={"volatile": True})``;
* ``scrapy.Item``: ``scrapy.Field(type=Decimal, required=True, volatile=True)``; ``type`` is a
  type (``int | None``, ``list[str]``) or its name (``"Decimal"``). An Item whose Fields declare
  no ``type`` is schema-less (like a dict): it is cleaned but not coerced, and ``required`` alone
  still holds.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from itemadapter import ItemAdapter
from itemadapter.adapter import AttrsAdapter, DictAdapter, PydanticAdapter

if TYPE_CHECKING:
    from collections.abc import Mapping

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


_NAMED_TYPES: dict[str, type] = {t.__name__: t for t in _SCALARS}


def _named(hint: Any) -> Any:
    """A type given by name in metadata (``scrapy.Field(type="Decimal")``) as the type."""
    if isinstance(hint, str):
        if hint not in _NAMED_TYPES:
            raise TypeError(f"unsupported field type {hint!r}; use one of {sorted(_NAMED_TYPES)}")
        return _NAMED_TYPES[hint]
    return hint


def _admits_none(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return hint is None or (
        origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)
    )


def _declared(item_cls: type) -> dict[str, tuple[Any, Mapping[str, Any]]]:
    """Each field of an item class: its declared type hint (``None``: none) and its metadata."""
    try:
        return _declared_fields(item_cls)
    except NameError as exc:  # an annotation naming something out of the module's reach
        raise TypeError(f"{item_cls.__name__}: cannot resolve a field type: {exc}") from None


def _declared_fields(item_cls: type) -> dict[str, tuple[Any, Mapping[str, Any]]]:
    if not isinstance(item_cls, type) or not ItemAdapter.is_item_class(item_cls):
        raise TypeError(f"{getattr(item_cls, '__name__', item_cls)} is not an item class")
    if DictAdapter.is_item_class(item_cls):
        raise TypeError(f"{item_cls.__name__} items have no declared fields")
    if dataclasses.is_dataclass(item_cls):
        hints = typing.get_type_hints(item_cls)
        return {f.name: (hints[f.name], f.metadata) for f in dataclasses.fields(item_cls)}
    if AttrsAdapter.is_item_class(item_cls):
        import attr

        attr.resolve_types(item_cls)
        return {a.name: (a.type, a.metadata) for a in attr.fields(item_cls)}
    if PydanticAdapter.is_item_class(item_cls):
        return _pydantic_fields(item_cls)
    fields: dict[str, Mapping[str, Any]] = getattr(item_cls, "fields", {})  # scrapy.Item
    return {name: (meta.get("type"), meta) for name, meta in fields.items()}


def _pydantic_fields(model: type) -> dict[str, tuple[Any, Mapping[str, Any]]]:
    fields = getattr(model, "model_fields", None)
    if fields is None:
        raise TypeError(f"{model.__name__}: pydantic v1 models are not supported, use v2")
    declared: dict[str, tuple[Any, Mapping[str, Any]]] = {}
    for name, info in fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        required = info.is_required() and not _admits_none(info.annotation)
        declared[name] = (info.annotation, {"required": required, **extra})
    return declared


def _spec(name: str, hint: Any, meta: Mapping[str, Any]) -> FieldSpec:
    return FieldSpec(
        name, _scalar_type(_named(hint)), bool(meta.get("required")), bool(meta.get("volatile"))
    )


@cache
def field_specs(item_cls: type) -> tuple[FieldSpec, ...]:
    """The declared fields of an item class, in declaration order.

    Any class itemadapter supports whose every field declares a supported type: dataclass,
    attrs, pydantic v2 model, ``scrapy.Item`` with ``Field(type=…)``. Raises ``TypeError`` for
    dict items, for classes without fields or with a field that declares no type, and for
    unsupported types.
    """
    declared = _declared(item_cls)
    if not declared:
        raise TypeError(f"{item_cls.__name__} declares no fields")
    untyped = [name for name, (hint, _) in declared.items() if hint is None]
    if untyped:
        raise TypeError(f"{item_cls.__name__}: no type declared for {', '.join(untyped)}")
    return tuple(_spec(name, hint, meta) for name, (hint, meta) in declared.items())


@cache
def declared_fields(item_cls: type) -> tuple[FieldSpec, ...]:
    """The fields of any item class that declare a supported type (``()`` for dicts).

    For the clean and validate pipelines: a class may declare some fields and not others
    (``scrapy.Field()``), or use types of its own (pydantic ``HttpUrl``); those fields are
    handled as schema-less values.
    """
    try:
        declared = _declared(item_cls)
    except TypeError:
        return ()
    specs = []
    for name, (hint, meta) in declared.items():
        try:
            specs.append(_spec(name, hint, meta))
        except TypeError:
            continue
    return tuple(specs)


@cache
def required_fields(item_cls: type) -> tuple[str, ...]:
    """Fields whose metadata says ``required``, typed or not (``scrapy.Field(required=True)``)."""
    try:
        declared = _declared(item_cls)
    except TypeError:
        return ()
    return tuple(name for name, (_, meta) in declared.items() if meta.get("required"))


def item_table(item_cls: type) -> str:
    """The table an item class is stored in (its ``table`` or its lower-cased name)."""
    return str(getattr(item_cls, "table", item_cls.__name__.lower()))


def item_key(item_cls: type) -> tuple[str, ...]:
    """The natural key fields of an item class (default: ``url``)."""
    return tuple(getattr(item_cls, "key", ("url",)))
