"""``CleanPipeline``: normalise the text of any item and turn it into the types its class declares.

Settings: ``CLEAN_ENABLED``, ``CLEAN_DATE_ORDER``. Works on every item type itemadapter supports
(dict, ``scrapy.Item``, dataclass, attrs, pydantic). Every text value is normalised
(``crawler.cleaning.clean_text``; blank text becomes ``None``), in lists and dicts too; URL fields
(names ending in ``url``, ``canonical``, and lists named ``*_urls``) are canonicalised. Fields whose
type is declared (``crawler.items.declared_fields``) are coerced: ``Decimal``/``int``/``float``/
``bool``/``datetime`` parsed from text, ``list`` fields cleaned and deduplicated. Values without a
declared type are cleaned but never coerced. A value that cannot be converted is left as it is,
counted in ``clean/coerce_failed`` and ``clean/coerce_failed/<field>``, and the validate pipeline
rejects the item with a reason.

Mutable items are changed in place; frozen dataclasses and attrs classes are replaced; pydantic
models are always rebuilt with ``model_validate`` (their own validators run on the cleaned data;
when they refuse it, the item is left as it was for the validate pipeline to reject).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from itemadapter import ItemAdapter
from itemadapter.adapter import AttrsAdapter, PydanticAdapter
from scrapy.exceptions import NotConfigured

from crawler import cleaning, defaults
from crawler.items import declared_fields

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

COERCE_FAILED = "clean/coerce_failed"
_T = TypeVar("_T")


class _Failed(Exception):
    """A value that cannot become the field's type."""


@dataclass(frozen=True)
class CleanConfig:
    date_order: str = ""  # CLEAN_DATE_ORDER: "DMY", "MDY" or "" (ambiguous dates stay text)

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> CleanConfig:
        if not settings.getbool("CLEAN_ENABLED", defaults.CLEAN_ENABLED):
            raise NotConfigured("CLEAN_ENABLED is off")
        order = settings.get("CLEAN_DATE_ORDER", defaults.CLEAN_DATE_ORDER) or ""
        return cls(date_order=cleaning.date_order(str(order)))


def is_url_field(name: str) -> bool:
    """``url``, ``final_url``, ``canonical``, ``image_urls``…: fields holding URLs."""
    return name.endswith(("url", "urls", "canonical"))


def _text(value: Any, url: bool) -> str | None:
    if isinstance(value, str):
        return cleaning.canonical_url(value) if url else cleaning.clean_text(value)
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return str(value)  # an SKU scraped as a number is still the SKU
    raise _Failed


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))  # the shortest text of the float, not its binary expansion
    if isinstance(value, str):
        return _parse(cleaning.parse_price, value)
    raise _Failed


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (float, Decimal)) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str):
        return _parse(cleaning.parse_int, value)
    raise _Failed


def _float(value: Any) -> float | int | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value  # an int is a valid float value: left as it is
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str):
        return _parse(cleaning.parse_float, value)
    raise _Failed


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return _parse(cleaning.parse_bool, value)
    raise _Failed


def _datetime(value: Any, date_order: str) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return _parse(lambda text: cleaning.parse_datetime(text, date_order), value)
    raise _Failed


def _parse(parse: Callable[[str], _T | None], text: str) -> _T | None:
    """Blank text is ``None``; text that does not parse is a failure."""
    if cleaning.clean_text(text) is None:
        return None
    value = parse(text)
    if value is None:
        raise _Failed
    return value


def _list(value: Any, url: bool) -> list[str]:
    """Each element cleaned, blanks dropped, repeats dropped, order kept; one string is a list."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)):
        raise _Failed
    cleaned = (_text(v, url) for v in values if v is not None)
    return list(dict.fromkeys(v for v in cleaned if v is not None))


_COERCE: dict[type, Callable[[Any], Any]] = {
    Decimal: _decimal,
    int: _int,
    float: _float,
    bool: _bool,
}
_MAX_DEPTH = 200  # schema-less values nested deeper are left as they are (no RecursionError)


def coerce(value: Any, to: type, name: str, date_order: str = "") -> Any:
    """``value`` as a value of type ``to`` for the field ``name``; raises ``ValueError``."""
    try:
        if to is str:
            return _text(value, url=is_url_field(name))
        if to is list:
            return _list(value, url=is_url_field(name))
        if to is datetime:
            return _datetime(value, date_order)
        return _COERCE[to](value)
    except _Failed:
        raise ValueError(f"{name}: cannot make a {to.__name__} of {value!r:.60}") from None


def clean_value(value: Any, url: bool = False, depth: int = 0) -> Any:
    """A value without a declared type, its text normalised, inside lists and dicts too.

    Blank text becomes ``None``; nothing is removed, reordered or converted (a list keeps its
    length, a dict its keys); text under URL-named keys is canonicalised.
    """
    if isinstance(value, str):
        return cleaning.canonical_url(value) if url else cleaning.clean_text(value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, (list, tuple)):
        values = [clean_value(v, url, depth + 1) for v in value]
        return values if isinstance(value, list) else tuple(values)
    if isinstance(value, dict):
        return {
            k: clean_value(v, isinstance(k, str) and is_url_field(k), depth + 1)
            for k, v in value.items()
        }
    return value


def _changed(old: Any, new: Any) -> bool:
    return new is not old and (type(new) is not type(old) or new != old)


class CleanPipeline:
    """Normalises text and URLs and parses declared fields of any item (``CLEAN_ENABLED``)."""

    def __init__(self, crawler: Crawler, config: CleanConfig) -> None:
        self.crawler = crawler
        self.config = config

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CleanPipeline:
        return cls(crawler, CleanConfig.from_settings(crawler.settings))

    def process_item(self, item: Any) -> Any:
        if not ItemAdapter.is_item(item):
            return item  # Scrapy itself refuses anything else
        adapter = ItemAdapter(item)
        item_cls: type = type(item)
        specs = {spec.name: spec for spec in declared_fields(item_cls)}
        changes: dict[str, Any] = {}
        for name in list(adapter.keys()):
            value = adapter[name]
            if value is None:
                continue
            spec = specs.get(name)
            if spec is None:
                new = clean_value(value, isinstance(name, str) and is_url_field(name))
            else:
                try:
                    new = coerce(value, spec.type, spec.name, self.config.date_order)
                except ValueError:
                    self._count_failure(name)
                    continue
            if _changed(value, new):
                changes[name] = new
        return self._changed_item(item, adapter, changes) if changes else item

    def _changed_item(self, item: Any, adapter: ItemAdapter, changes: dict[str, Any]) -> Any:
        """The item with the changes: in place, or a new one for frozen and pydantic items."""
        if PydanticAdapter.is_item(item) and hasattr(item, "model_validate"):  # v2
            return self._revalidated(item, changes)
        try:
            for name, new in changes.items():
                adapter[name] = new
        except (dataclasses.FrozenInstanceError, AttributeError):
            if dataclasses.is_dataclass(item):
                return dataclasses.replace(item, **changes)  # type: ignore[type-var]
            if not AttrsAdapter.is_item(item):
                raise
            import attr  # attrs items only

            return attr.evolve(item, **changes)
        return item

    def _revalidated(self, model: Any, changes: dict[str, Any]) -> Any:
        """A new pydantic model from the cleaned data, through the model's own validation."""
        try:
            return type(model).model_validate({**dict(model), **changes}, by_name=True)
        except ValueError as exc:  # pydantic.ValidationError: validate says why
            errors = exc.errors() if hasattr(exc, "errors") else []
            for name in {str(e["loc"][0]) for e in errors if e.get("loc")} or {""}:
                self._count_failure(name)
            return model

    def _count_failure(self, name: str) -> None:
        stats = self.crawler.stats
        stats.inc_value(COERCE_FAILED)
        if name:
            stats.inc_value(f"{COERCE_FAILED}/{name}")
