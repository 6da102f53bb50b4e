"""Requests as JSON text, and back: what the frontier stores (never pickle).

``encode`` keeps every attribute of a ``Request`` (``Request.to_dict``): URL, method, headers,
body, cookies, meta, cb_kwargs, flags, priority, ``dont_filter``, and the callback and errback by
the name of the spider method. A callback that is no method of the spider, or ``cb_kwargs`` JSON
cannot hold, make the request ``Unstorable`` (it is then crawled from memory, not durably). A meta
value JSON cannot hold (an object some middleware put there) is left out, and its key named.
``decode`` accepts only ``Request`` classes already imported, so a row cannot make the crawl
import anything.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from scrapy import Request

from crawler.safety.json_serializer import dumps, loads

if TYPE_CHECKING:
    from scrapy import Spider


# Request attributes at their default values are not written (decode gets them back as defaults)
_DEFAULTS: dict[str, Any] = {
    "method": "GET", "headers": {}, "body": b"", "cookies": {}, "meta": {}, "encoding": "utf-8",
    "priority": 0, "dont_filter": False, "flags": [], "cb_kwargs": {}, "callback": None,
    "errback": None,
}  # fmt: skip


class Unstorable(ValueError):
    """The request cannot be written as JSON; the message says why."""


class BadRow(ValueError):
    """A stored request cannot be read back; the message says why."""


def _plain(value: Any) -> bool:
    try:
        dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _method_name(spider: Spider | None, func: Any, role: str) -> str | None:
    """The name of the spider method ``func`` is (Scrapy's ``Request.to_dict`` asks
    ``inspect.getmembers`` for every request: 0.3 ms each; this asks the method itself)."""
    if func is None or isinstance(func, str):
        return func
    name = getattr(func, "__name__", None)
    bound = getattr(spider, name, None) if name else None
    target = getattr(func, "__func__", None)
    if target is None or getattr(bound, "__func__", None) is not target:
        raise Unstorable(f"{role} {func!r} is not an instance method of the spider {spider!r}")
    return str(name)


def encode(request: Request, spider: Spider | None) -> tuple[str, list[str]]:
    """The request as JSON, and the meta keys left out because JSON cannot hold their values."""
    data: dict[str, Any] = {"url": request.url}
    for attribute in request.attributes:
        if attribute in ("url", "callback", "errback"):
            continue
        value = getattr(request, attribute)
        if attribute == "headers":
            value = dict(value)
        if attribute not in _DEFAULTS or value != _DEFAULTS[attribute]:
            data[attribute] = value  # a million rows: leave out what Request assumes
    for role in ("callback", "errback"):
        if (name := _method_name(spider, getattr(request, role), role)) is not None:
            data[role] = name
    if type(request) is not Request:
        data["_class"] = f"{type(request).__module__}.{type(request).__name__}"
    try:
        return dumps(data), []
    except (TypeError, ValueError):
        pass  # something JSON cannot hold: find it (the slow path, rare)
    dropped: list[str] = []
    meta = data.get("meta") or {}
    if not _plain(meta):
        dropped = [key for key, value in meta.items() if not _plain(value)]
        data["meta"] = {key: value for key, value in meta.items() if key not in dropped}
    if not _plain(data.get("cb_kwargs") or {}):
        raise Unstorable("cb_kwargs hold values JSON cannot store")
    try:
        return dumps(data), dropped
    except (TypeError, ValueError) as exc:
        raise Unstorable(str(exc)) from None


def _request_class(path: str) -> type[Request]:
    module_name, _, name = path.rpartition(".")
    module = sys.modules.get(module_name)
    cls = getattr(module, name, None) if module is not None else None
    if not (isinstance(cls, type) and issubclass(cls, Request)):
        raise BadRow(f"request class {path!r} is not a Request class of this crawl")
    return cls


def _method(spider: Spider | None, name: Any) -> Any:
    if name is None:
        return None
    method = getattr(spider, str(name), None)
    if not callable(method):
        raise BadRow(f"the spider has no method {name!r}")
    return method


def decode(text: str, spider: Spider | None) -> Request:
    """The request stored by ``encode``; ``BadRow`` for anything else."""
    try:
        data = loads(text)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise BadRow(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise BadRow("not a stored request (no url)")
    cls = _request_class(str(data.pop("_class"))) if "_class" in data else Request
    kwargs = {key: value for key, value in data.items() if key in cls.attributes}
    kwargs["callback"] = _method(spider, data.get("callback"))
    kwargs["errback"] = _method(spider, data.get("errback"))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise BadRow(f"cannot rebuild the request: {exc}") from None
