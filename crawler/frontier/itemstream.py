"""Items on their way from Redis workers to ``scrapy ingest``: the stream entry's JSON, and the
items sink of a crawl (what the Redis backend's ``flush_items`` flushes).

An entry (field ``e`` of one ``XADD``) is one JSON object; ``k`` says what it is:

* ``item``: ``type`` (class name), ``table``, ``key`` and ``fields`` (the ``crawler.itemtables``
  placement the worker found: fields as ``[name, type, required, volatile]``, ``null`` for a
  schema-less item), ``row_key``, ``values`` JSON-plain as the store writes them
  (``crawler.storage.schema.jsonable``) with ``tags`` naming the values that were ``Decimal``,
  ``datetime``, ``date`` or ``bytes`` (base64) so they come back as they were, ``at`` (when the
  worker saw it);
* ``reject``: ``type``, ``item`` (its values), ``reason``;
* ``unplaced``: ``type``, ``item``, ``reason``, ``spider`` (an object no table could take).

No class is imported on the ingesting side: a stream entry cannot make it import anything.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol
from weakref import WeakKeyDictionary

from crawler import defaults
from crawler.items import FieldSpec
from crawler.itemtables import Placement
from crawler.storage.schema import jsonable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

FIELD = "e"  # the one field of a stream entry
ITEM, REJECT, UNPLACED = "item", "reject", "unplaced"
_TYPES: dict[str, type] = {t.__name__: t for t in (str, int, float, bool, Decimal, datetime, list)}


class BadEntry(ValueError):
    """A stream entry that is not one of ours; the message says why."""


class ItemsSink(Protocol):
    def flush(self) -> bool:
        """Make the items buffered so far durable; False when that failed."""


_sinks: WeakKeyDictionary[Crawler, ItemsSink] = WeakKeyDictionary()


def redis_items_wanted(settings: BaseSettings) -> bool:
    """Items go to the Redis stream: ``FRONTIER = "redis"`` and ``REDIS_ITEMS``; the worker's
    SQLite and CSV pipelines are then off."""
    frontier = str(settings.get("FRONTIER", defaults.FRONTIER) or "").strip().lower()
    return frontier == "redis" and settings.getbool("REDIS_ITEMS", defaults.REDIS_ITEMS)


def register_items_sink(crawler: Crawler, sink: ItemsSink) -> None:
    _sinks[crawler] = sink


def items_sink_for(crawler: Crawler) -> ItemsSink | None:
    """The crawl's items sink (the Redis items pipeline), None when its items go elsewhere."""
    return _sinks.get(crawler)


def _tag(value: Any) -> str | None:
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    return None


def plain_values(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The values JSON can hold, and the tags that bring their types back (module doc)."""
    plain: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for raw_key, value in values.items():
        key = str(raw_key)
        tag = _tag(value)
        if tag == "bytes":
            plain[key] = base64.b64encode(bytes(value)).decode("ascii")
        else:
            plain[key] = jsonable(value)
        if tag is not None:
            tags[key] = tag
    return plain, tags


def typed_values(plain: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, Any]:
    values = dict(plain)
    for key, tag in tags.items():
        value = values.get(key)
        if not isinstance(value, str):
            continue
        try:
            if tag == "decimal":
                values[key] = Decimal(value)
            elif tag == "datetime":
                values[key] = datetime.fromisoformat(value)
            elif tag == "date":
                values[key] = date.fromisoformat(value)
            elif tag == "bytes":
                values[key] = base64.b64decode(value)
        except (ValueError, InvalidOperation):
            continue  # kept as the text it was sent as
    return values


def item_entry(
    type_name: str, placement: Placement, values: Mapping[str, Any], row_key: str, at: str
) -> str:
    plain, tags = plain_values(values)
    fields = (
        None
        if placement.fields is None
        else [[f.name, f.type.__name__, f.required, f.volatile] for f in placement.fields]
    )
    entry = {
        "k": ITEM, "type": type_name, "table": placement.table, "key": list(placement.key),
        "fields": fields, "row_key": row_key, "values": plain, "tags": tags, "at": at,
    }  # fmt: skip
    return json.dumps(entry, ensure_ascii=False)


def other_entry(kind: str, type_name: str, item: Any, reason: str, spider: str = "") -> str:
    entry = {"k": kind, "type": type_name, "item": jsonable(item), "reason": reason}
    if spider:
        entry["spider"] = spider
    return json.dumps(entry, ensure_ascii=False)


@dataclass(frozen=True)
class StreamItem:
    type_name: str
    placement: Placement
    values: dict[str, Any]
    row_key: str
    at: str | None


@dataclass(frozen=True)
class StreamOther:
    kind: str  # REJECT or UNPLACED
    type_name: str
    item: Any
    reason: str
    spider: str


def _fields(raw: Any) -> tuple[FieldSpec, ...] | None:
    if raw is None:
        return None
    specs = []
    for name, type_name, required, volatile in raw:
        if type_name not in _TYPES:
            raise BadEntry(f"field {name!r} has an unknown type {type_name!r}")
        specs.append(FieldSpec(str(name), _TYPES[type_name], bool(required), bool(volatile)))
    return tuple(specs)


def read_entry(fields: Mapping[str, str]) -> StreamItem | StreamOther:
    """The entry's content; ``BadEntry`` for anything this module did not write."""
    try:
        data = json.loads(fields[FIELD])
        kind = data["k"]
        if kind == ITEM:
            placement = Placement(str(data["table"]), tuple(data["key"]), _fields(data["fields"]))
            values = typed_values(data["values"], data.get("tags") or {})
            return StreamItem(str(data["type"]), placement, values, str(data["row_key"]),
                              data.get("at"))  # fmt: skip
        if kind in (REJECT, UNPLACED):
            return StreamOther(kind, str(data["type"]), data["item"], str(data["reason"]),
                               str(data.get("spider") or ""))  # fmt: skip
    except BadEntry:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadEntry(f"not an items entry: {type(exc).__name__}: {exc}") from None
    raise BadEntry(f"unknown entry kind {kind!r}")
