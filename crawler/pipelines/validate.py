"""``ValidatePipeline``: refuse items whose fields are missing, mistyped or absurdly long.

Settings: ``VALIDATE_ENABLED``, ``VALIDATE_MAX_FIELD_CHARS``. An invalid item raises
``RejectItem`` with one line naming every bad field (``"price: expected Decimal, got str 'Price on
request'; sku: missing"``); the run recorder stores it in the ``rejects`` table. Counted in
``validate/rejected`` and ``validate/rejected/<field>``; logged once at WARNING with the item URL.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy.exceptions import NotConfigured

from crawler import defaults
from crawler.exceptions import RejectItem
from crawler.items import FieldSpec, field_specs, item_key
from crawler.stats import REJECTED

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidateConfig:
    max_field_chars: int

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> ValidateConfig:
        if not settings.getbool("VALIDATE_ENABLED", defaults.VALIDATE_ENABLED):
            raise NotConfigured("VALIDATE_ENABLED is off")
        limit = settings.getint("VALIDATE_MAX_FIELD_CHARS", defaults.VALIDATE_MAX_FIELD_CHARS)
        return cls(max_field_chars=limit)


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


def field_problems(spec: FieldSpec, value: Any, is_key: bool, max_chars: int) -> list[str]:
    """What is wrong with one field's value, as ``"<field>: <problem>"`` strings."""
    if _is_empty(value):
        return [f"{spec.name}: missing"] if spec.required or is_key else []
    if not _type_ok(value, spec.type):
        return [f"{spec.name}: expected {spec.type.__name__}, {_got(value)}"]
    texts = [(spec.name, value)] if isinstance(value, str) else []
    if spec.type is list:
        for index, element in enumerate(value):
            if not isinstance(element, str):
                return [f"{spec.name}[{index}]: expected str, {_got(element)}"]
            texts.append((f"{spec.name}[{index}]", element))
    return [
        f"{name}: {len(text)} chars, more than {max_chars}"
        for name, text in texts
        if len(text) > max_chars
    ]


def item_problems(item: Any, max_chars: int) -> dict[str, list[str]]:
    """Every problem of an item, by field name (``{}`` for a valid item)."""
    if not dataclasses.is_dataclass(item) or isinstance(item, type):
        return {"": [f"not a dataclass item: {type(item).__name__}"]}
    adapter = ItemAdapter(item)
    key = item_key(type(item))
    problems = {
        spec.name: field_problems(spec, adapter.get(spec.name), spec.name in key, max_chars)
        for spec in field_specs(type(item))
    }
    problems.update({name: [f"{name}: missing"] for name in key if name not in adapter})
    return {name: found for name, found in problems.items() if found}


class ValidatePipeline:
    """Rejects items that do not match their class (``VALIDATE_ENABLED``)."""

    def __init__(self, crawler: Crawler, config: ValidateConfig) -> None:
        self.crawler = crawler
        self.config = config

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ValidatePipeline:
        return cls(crawler, ValidateConfig.from_settings(crawler.settings))

    def process_item(self, item: Any) -> Any:
        problems = item_problems(item, self.config.max_field_chars)
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
