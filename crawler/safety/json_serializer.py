"""A JSON serializer for scrapy-redis request queues (``SCHEDULER_SERIALIZER``), never pickle.

scrapy-redis stores ``Request.to_dict()`` with its default serializer, pickle: whoever can write to
the Redis server could then run code in every worker. This module has the ``dumps``/``loads``
pair scrapy-redis expects; bytes (body, headers) travel as ``{"__bytes__": "<base64>"}``, and a
value JSON cannot hold (an object in ``meta``) is an error at ``dumps``, not a pickle.
"""

from __future__ import annotations

import base64
import json
from typing import Any

_BYTES = "__bytes__"


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {
            str(k) if not isinstance(k, bytes) else k.decode("latin-1"): _encode(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_BYTES}:
            return base64.b64decode(value[_BYTES])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def dumps(obj: Any) -> str:
    return json.dumps(_encode(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def loads(data: str | bytes) -> Any:
    return _decode(json.loads(data))
