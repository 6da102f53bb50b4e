"""Where an item of any type is stored: its table, and the natural key that identifies it.

Every item ``itemadapter`` reads (dataclass, attrs, pydantic, ``scrapy.Item``, dict) gets a
``Placement``: the table it goes to, its key fields (empty: a content hash identifies it), and its
declared fields when its class declares them (``crawler.items.field_specs``; ``None``: the columns
are inferred from the values, see ``crawler.storage.inferred``).

Table, first rule that applies:

1. ``ITEM_TABLES`` (setting) then the spider's ``item_tables`` (attribute), both
   ``{name: table}``: an item class is looked up by its class name (``"QuoteItem"``), a dict (or
   any mapping) by the spider's name;
2. a dict: the spider's ``item_table`` attribute (a str), if set;
3. the class's ``table`` attribute;
4. a dict: the spider's name; a class: its name in snake_case (``QuoteItem`` -> ``quote_item``).

The name is then made a safe SQL identifier (``safe_table``): accents dropped (NFKD), lower-cased,
every run of characters other than ``a-z 0-9 _`` becomes ``_``, leading/trailing ``_`` dropped,
cut to ``MAX_NAME - 2`` characters, ``t_`` put before a name that is empty or starts with a digit
or ``sqlite_``; a name the store uses itself (``RESERVED_TABLES``) gets ``_items``
appended (``runs`` -> ``runs_items``).

Key, first rule that applies: ``ITEM_KEYS`` (setting) then the spider's ``item_keys``
(attribute), both ``{table: [field, …]}`` keyed by the table name after the rules above; then the
class's ``key`` attribute. Without one, or when an item lacks a value of its key, the item is
identified by a hash of all its non-volatile field values (``content_key``): a rerun that finds
the same content updates its row instead of adding one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from itemadapter.adapter import DictAdapter

from crawler import defaults
from crawler.items import FieldSpec, field_specs
from crawler.storage.inferred import ascii_fold
from crawler.storage.schema import to_json

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

MAX_NAME = 60
# the store's own tables (and ones it may add): an item table never takes these names
RESERVED_TABLES = frozenset(
    {
        "runs",
        "rejects",
        "fetch_state",
        "export_cursors",
        "item_columns",
        "unplaced_items",
        "frontier",
        "requests",
        "migrations",
    }
)
_NOT_IDENT = re.compile(r"[^a-z0-9_]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``QuoteItem`` -> ``quote_item``; ``HTTPPage`` -> ``http_page``."""
    return _CAMEL.sub("_", name).lower()


def safe_table(name: str) -> str:
    """``name`` as a table name that is a plain SQL identifier and not one of the store's own."""
    text = _NOT_IDENT.sub("_", ascii_fold(str(name)).lower()).strip("_")
    text = text[: MAX_NAME - 2].rstrip("_")
    if not text or text[0].isdigit() or text.startswith("sqlite_"):
        text = f"t_{text}"
    return f"{text}_items" if text in RESERVED_TABLES else text


@dataclass(frozen=True)
class Placement:
    table: str
    key: tuple[str, ...]  # empty: identified by a content hash
    fields: tuple[FieldSpec, ...] | None  # declared fields; None: inferred from the values

    @property
    def declared(self) -> bool:
        return self.fields is not None


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{what} must be a dict (or JSON object), not {value!r}") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a dict, not {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def _fields(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what} must be a list of field names, not {value!r}")
    return tuple(str(part) for part in value)


@dataclass(frozen=True)
class TableRules:
    """``ITEM_TABLES`` / ``ITEM_KEYS`` with the spider's ``item_tables`` / ``item_table`` /
    ``item_keys``: what ``place`` needs to name any item's table and key."""

    spider: str
    tables: tuple[tuple[str, str], ...] = ()  # name -> table, settings first
    dict_table: str | None = None  # the spider's item_table
    keys: tuple[tuple[str, tuple[str, ...]], ...] = ()  # table -> key fields, settings first

    @classmethod
    def from_settings(cls, settings: BaseSettings, spider: object | None) -> TableRules:
        name = str(getattr(spider, "name", None) or "items")
        tables = _mapping(settings.get("ITEM_TABLES", defaults.ITEM_TABLES), "ITEM_TABLES")
        own = _mapping(getattr(spider, "item_tables", None), f"{name}.item_tables")
        keys = _mapping(settings.get("ITEM_KEYS", defaults.ITEM_KEYS), "ITEM_KEYS")
        own_keys = _mapping(getattr(spider, "item_keys", None), f"{name}.item_keys")
        merged_keys = {
            safe_table(t): _fields(v, f"key of {t!r}") for t, v in (own_keys | keys).items()
        }
        dict_table = getattr(spider, "item_table", None)
        return cls(
            spider=name,
            tables=tuple((own | tables).items()),
            dict_table=None if dict_table is None else str(dict_table),
            keys=tuple(merged_keys.items()),
        )

    def place(self, item: Any) -> Placement:
        """The placement of ``item``; ``TypeError`` when ``itemadapter`` cannot read it.

        Worked out once per item class (every pipeline asks for every item)."""
        return _placement(self, type(item))

    def _place(self, item_cls: type, is_mapping: bool) -> Placement:
        tables = dict(self.tables)
        if is_mapping:
            fields = None
            name = tables.get(self.spider) or self.dict_table or self.spider
        else:
            try:
                fields = field_specs(item_cls)
            except TypeError:
                fields = None
            name = (
                tables.get(item_cls.__name__)
                or getattr(item_cls, "table", None)
                or snake_case(item_cls.__name__)
            )
        table = safe_table(str(name))
        key = dict(self.keys).get(table)
        if key is None:
            key = tuple(getattr(item_cls, "key", ()) or ()) if not is_mapping else ()
        return Placement(table, tuple(key), fields)


def key_values(placement: Placement, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The item's key values, or None when it has no key or lacks one of its values."""
    if not placement.key:
        return None
    found = tuple(values.get(name) for name in placement.key)
    return None if any(value is None for value in found) else found


def content_key(values: Mapping[str, Any], volatile: frozenset[str] = frozenset()) -> str:
    """A hash of the set, non-volatile field values: the key of an item without a natural key."""
    present = {str(k): v for k, v in values.items() if v is not None and k not in volatile}
    text = to_json(present, canonical=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def row_key(placement: Placement, values: Mapping[str, Any]) -> str:
    """What identifies the item's row (the ``_key`` column): its natural key's values hashed, or
    the content hash when it has none."""
    found = key_values(placement, values)
    volatile = frozenset(f.name for f in placement.fields or () if f.volatile)
    if found is None:
        return "c:" + content_key(values, volatile)
    text = to_json(list(found), canonical=True)
    return "k:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


_PLACEMENTS: dict[tuple[TableRules, type], Placement] = {}  # a crawl meets a few classes


def _placement(rules: TableRules, item_cls: type) -> Placement:
    found = _PLACEMENTS.get((rules, item_cls))
    if found is not None:
        return found
    if issubclass(item_cls, type):
        raise TypeError("a class is not an item")
    if not ItemAdapter.is_item_class(item_cls):
        raise TypeError(f"not an item type itemadapter reads: {item_cls.__name__}")
    is_mapping = DictAdapter.is_item_class(item_cls)  # a dict, not a scrapy.Item
    placement = _PLACEMENTS[(rules, item_cls)] = rules._place(item_cls, is_mapping)
    return placement


_PLAIN = (str, int, float, bool, type(None), Decimal, datetime, date, bytes)


def item_values(item: Any) -> dict[str, Any]:
    """The item's field values, as ``ItemAdapter(item).asdict()`` gives them, read shallowly:
    ``asdict`` copies every value, and the dedupe, SQLite and CSV pipelines each read every
    item. Items nested in values (an Item in a list) still go through ``asdict``."""
    adapter = ItemAdapter(item)
    values = dict(adapter.items())
    for value in values.values():
        if not isinstance(value, _PLAIN) and _holds_item(value):
            return adapter.asdict()
    return values


def _holds_item(value: Any) -> bool:
    if isinstance(value, dict):
        inner: Any = value.values()
    elif isinstance(value, list | tuple):
        inner = value
    else:
        return ItemAdapter.is_item(value)
    return any(not isinstance(v, _PLAIN) and _holds_item(v) for v in inner)
