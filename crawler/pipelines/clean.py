"""``CleanPipeline``: turn scraped text into the types an item class declares.

Settings: ``CLEAN_ENABLED``. Text is normalised (``crawler.cleaning.clean_text``), URL fields
(names ending in ``url``, ``canonical``, and lists named ``*_urls``) are canonicalised, and
``Decimal``/``int``/``float``/``bool``/``datetime`` fields are parsed from text. A value that
cannot be converted is left as it is, counted in ``clean/coerce_failed`` and
``clean/coerce_failed/<field>``, and the validate pipeline rejects the item with a reason.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from itemadapter import ItemAdapter
from scrapy.exceptions import NotConfigured

from crawler import cleaning, defaults
from crawler.items import field_specs

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
    @classmethod
    def from_settings(cls, settings: BaseSettings) -> CleanConfig:
        if not settings.getbool("CLEAN_ENABLED", defaults.CLEAN_ENABLED):
            raise NotConfigured("CLEAN_ENABLED is off")
        return cls()


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


def _datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return _parse(cleaning.parse_datetime, value)
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
    datetime: _datetime,
}


def coerce(value: Any, to: type, name: str) -> Any:
    """``value`` as a value of type ``to`` for the field ``name``; raises ``ValueError``."""
    try:
        if to is str:
            return _text(value, url=is_url_field(name))
        if to is list:
            return _list(value, url=is_url_field(name))
        return _COERCE[to](value)
    except _Failed:
        raise ValueError(f"{name}: cannot make a {to.__name__} of {value!r:.60}") from None


class CleanPipeline:
    """Normalises text and URLs and parses typed fields of dataclass items (``CLEAN_ENABLED``)."""

    def __init__(self, crawler: Crawler, config: CleanConfig) -> None:
        self.crawler = crawler
        self.config = config

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CleanPipeline:
        return cls(crawler, CleanConfig.from_settings(crawler.settings))

    def process_item(self, item: Any) -> Any:
        if not dataclasses.is_dataclass(item) or isinstance(item, type):
            return item  # not ours to clean: the validate pipeline says why
        changes: dict[str, Any] = {}
        adapter = ItemAdapter(item)
        for spec in field_specs(type(item)):
            value = adapter.get(spec.name)
            if value is None:
                continue
            try:
                new = coerce(value, spec.type, spec.name)
            except ValueError:
                self._count_failure(spec.name)
                continue
            if new is not value:
                changes[spec.name] = new
        try:
            for name, new in changes.items():
                adapter[name] = new
        except dataclasses.FrozenInstanceError:
            return dataclasses.replace(item, **changes)
        return item

    def _count_failure(self, name: str) -> None:
        stats = self.crawler.stats
        stats.inc_value(COERCE_FAILED)
        stats.inc_value(f"{COERCE_FAILED}/{name}")
