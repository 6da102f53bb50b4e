"""``ValidatePipeline``: refuse items whose fields are missing, mistyped or absurdly long.

Settings: ``VALIDATE_ENABLED``, ``VALIDATE_MAX_FIELD_CHARS``, ``VALIDATE_JSON_SCHEMAS`` (and
``CLEAN_DATE_ORDER``, to say why a date is not one). Works on every item type itemadapter
supports; an item is dropped only when one of these says it is invalid:

* declared fields (``crawler.items.declared_fields``): the value has the declared type, and a
  required field (``required`` metadata, or a name of the class's ``key``) is not empty;
* ``required`` metadata alone, for fields without a declared type (``scrapy.Field(required=True)``);
* pydantic models: the model's own validation (``model_validate`` on the item's data); its errors
  replace ours for the same field;
* a JSON Schema: ``VALIDATE_JSON_SCHEMAS[<item class name>]``, else ``[<spider name>]``, else the
  spider's ``item_schema`` attribute (a dict, or a JSON file path);
* every text value, nested ones included, is at most ``VALIDATE_MAX_FIELD_CHARS`` long.

A dict without a schema is valid. An invalid item raises ``RejectItem`` with one line naming
every bad field (``"price: expected Decimal, got str 'Price on request'; sku: missing"``); the run
recorder stores it in the ``rejects`` table. Counted in ``validate/rejected`` and
``validate/rejected/<field>``; logged once at WARNING with the item URL.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from itemadapter.adapter import PydanticAdapter
from scrapy.exceptions import NotConfigured

from crawler import cleaning, defaults
from crawler.exceptions import RejectItem
from crawler.items import FieldSpec, declared_fields, required_fields
from crawler.itemschema import load_schema, schema_problems
from crawler.stats import REJECTED

if TYPE_CHECKING:
    from collections.abc import Iterator

    from jsonschema.protocols import Validator
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

_MAX_DEPTH = 200  # text nested deeper is not measured (no RecursionError)
_UNSET: Any = object()


@dataclass(frozen=True)
class ValidateConfig:
    max_field_chars: int
    date_order: str = ""
    schemas: dict[str, Validator] = field(default_factory=dict)  # by class or spider name

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> ValidateConfig:
        if not settings.getbool("VALIDATE_ENABLED", defaults.VALIDATE_ENABLED):
            raise NotConfigured("VALIDATE_ENABLED is off")
        limit = settings.getint("VALIDATE_MAX_FIELD_CHARS", defaults.VALIDATE_MAX_FIELD_CHARS)
        order = settings.get("CLEAN_DATE_ORDER", defaults.CLEAN_DATE_ORDER) or ""
        sources = settings.getdict("VALIDATE_JSON_SCHEMAS", defaults.VALIDATE_JSON_SCHEMAS)
        schemas = {
            str(name): load_schema(source, f"VALIDATE_JSON_SCHEMAS[{name!r}]")
            for name, source in sources.items()
        }
        return cls(limit, cleaning.date_order(str(order)), schemas)


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, (list, tuple)) and not value)


def _type_ok(value: Any, to: type) -> bool:
    if isinstance(value, bool) and to is not bool:
        return False  # True is an int to Python, not to a dataset
    if to is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    if to is Decimal:
        return isinstance(value, Decimal) and value.is_finite()
    return isinstance(value, to)


def _got(value: Any) -> str:
    return f"got {type(value).__name__} {value!r:.60}"


def _wrong_type(spec: FieldSpec, value: Any, date_order: str) -> str:
    if (
        spec.type is datetime
        and isinstance(value, str)
        and cleaning.ambiguous_date(value, date_order)
    ):
        return f"{spec.name}: ambiguous date {value!r:.60} (day-month or month-day?)"
    return f"{spec.name}: expected {spec.type.__name__}, {_got(value)}"


def field_problems(
    spec: FieldSpec, value: Any, is_key: bool, max_chars: int, date_order: str = ""
) -> list[str]:
    """What is wrong with one declared field's value, as ``"<field>: <problem>"`` strings."""
    if _is_empty(value):
        return [f"{spec.name}: missing"] if spec.required or is_key else []
    if not _type_ok(value, spec.type):
        return [_wrong_type(spec, value, date_order)]
    if spec.type is list:
        for index, element in enumerate(value):
            if not isinstance(element, str):
                return [f"{spec.name}[{index}]: expected str, {_got(element)}"]
    return text_problems(spec.name, value, max_chars)


def text_problems(path: str, value: Any, max_chars: int, depth: int = 0) -> list[str]:
    """Every text in the value (in lists and dicts too) longer than ``max_chars``."""
    if isinstance(value, str):
        return (
            [f"{path}: {len(value)} chars, more than {max_chars}"] if len(value) > max_chars else []
        )
    if depth >= _MAX_DEPTH:
        return []
    if isinstance(value, (list, tuple)):
        parts: Iterator[tuple[str, Any]] = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, dict):
        parts = ((f"{path}.{k}", v) for k, v in value.items())
    else:
        return []
    return [p for sub, v in parts for p in text_problems(sub, v, max_chars, depth + 1)]


def item_problems(item: Any, config: ValidateConfig) -> dict[str, list[str]]:
    """What our checks find wrong with an item, by field name (``{}`` for a valid item)."""
    if not ItemAdapter.is_item(item):
        return {"": [f"not an item: {type(item).__name__}"]}
    adapter = ItemAdapter(item)
    item_cls: type = type(item)
    specs = {spec.name: spec for spec in declared_fields(item_cls)}
    key = tuple(getattr(item_cls, "key", ()))  # a class-level natural key must be filled
    required = {*required_fields(item_cls), *key}
    names = dict.fromkeys([*adapter.field_names(), *adapter.keys(), *key])
    problems: dict[str, list[str]] = {}
    for name in names:
        value = adapter.get(name)
        spec = specs.get(name)
        if spec is not None:
            found = field_problems(
                spec, value, name in required, config.max_field_chars, config.date_order
            )
        elif _is_empty(value):
            found = [f"{name}: missing"] if name in required else []
        else:
            found = text_problems(str(name), value, config.max_field_chars)
        if found:
            problems[str(name)] = found
    return problems


def pydantic_problems(model: Any) -> dict[str, list[str]]:
    """The pydantic model's own verdict on its data (``model_validate``), by field."""
    try:
        type(model).model_validate(dict(model), by_name=True)
    except ValueError as exc:  # pydantic.ValidationError
        if not hasattr(exc, "errors"):
            raise
        problems: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False):
            loc = [str(part) if not isinstance(part, int) else part for part in error["loc"]]
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
            message = " ".join(str(error["msg"]).split())
            problems.setdefault(str(loc[0]) if loc else "", []).append(
                f"{path}: {message}" if path else message
            )
        return problems
    return {}


class ValidatePipeline:
    """Rejects items that do not match their class, model or schema (``VALIDATE_ENABLED``)."""

    def __init__(self, crawler: Crawler, config: ValidateConfig) -> None:
        self.crawler = crawler
        self.config = config
        self._spider_schema: Validator | None = _UNSET

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ValidatePipeline:
        return cls(crawler, ValidateConfig.from_settings(crawler.settings))

    def open_spider(self) -> None:
        self._schema_of_spider()  # a broken item_schema stops the crawl here, not at each item

    def _schema_of_spider(self) -> Validator | None:
        if self._spider_schema is _UNSET:
            source = getattr(self.crawler.spider, "item_schema", None)
            where = f"{type(self.crawler.spider).__name__}.item_schema"
            self._spider_schema = None if source is None else load_schema(source, where)
        return self._spider_schema

    def _schema_for(self, item: Any) -> Validator | None:
        spider_name = getattr(self.crawler.spider, "name", None)
        for name in (type(item).__name__, spider_name):
            if name in self.config.schemas:
                return self.config.schemas[name]
        return self._schema_of_spider()

    def problems(self, item: Any) -> dict[str, list[str]]:
        """Every problem of an item, by field name (``""``: the item as a whole)."""
        problems = item_problems(item, self.config)
        if "" in problems:
            return problems
        if PydanticAdapter.is_item(item) and hasattr(item, "model_validate"):  # v2
            problems.update(pydantic_problems(item))  # pydantic's word replaces ours
        schema = self._schema_for(item)
        if schema is not None:
            for name, found in schema_problems(schema, ItemAdapter(item).asdict()).items():
                known = problems.setdefault(name, [])
                known.extend(p for p in found if p not in known)
        return problems

    def process_item(self, item: Any) -> Any:
        problems = self.problems(item)
        if not problems:
            return item
        stats = self.crawler.stats
        stats.inc_value(REJECTED)
        for name in problems:
            if name:
                stats.inc_value(f"{REJECTED}/{name}")
        reason = "; ".join(p for found in problems.values() for p in found)
        url = ItemAdapter(item).get("url") if ItemAdapter.is_item(item) else None
        logger.warning("Rejected %s%s: %s", type(item).__name__, f" {url}" if url else "", reason)
        reject = RejectItem(reason)
        reject.log_level = "DEBUG"  # our WARNING above says it in one line; Scrapy's dumps the item
        raise reject
