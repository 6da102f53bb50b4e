"""JSON Schemas for items: loaded once, checked against an item's data, errors as one-liners.

Used by ``ValidatePipeline`` (``VALIDATE_JSON_SCHEMAS``, a spider's ``item_schema``). A schema is
given as a dict, or as the path of a JSON file; it is checked against its own meta-schema when
loaded, so a broken schema stops the crawl at start instead of rejecting every item.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.exceptions import ItemSchemaError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from jsonschema.protocols import Validator

_MAX_DEPTH = 200  # deeper values are left as they are (no RecursionError)
_MESSAGE_CHARS = (
    160  # jsonschema puts the whole value in its message: a 50 MB value is not a reason
)


def load_schema(source: Any, where: str) -> Validator:
    """A validator for a schema given as a dict or a JSON file path; ``where`` names the setting."""
    if isinstance(source, (str, Path)):
        try:
            source = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ItemSchemaError(f"{where}: cannot read {source}: {exc}") from None
    if not isinstance(source, (dict, bool)):
        raise ItemSchemaError(
            f"{where}: a JSON Schema is a dict or a file path, not {source!r:.60}"
        )
    schema: Any = source
    # here: jsonschema takes 80 ms to import, and most crawls have no schema
    from jsonschema import exceptions as schema_errors
    from jsonschema import validators

    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except schema_errors.SchemaError as exc:
        raise ItemSchemaError(f"{where}: not a valid JSON Schema: {_short(exc.message)}") from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_problems(validator: Validator, data: Mapping[str, Any]) -> dict[str, list[str]]:
    """What the schema says is wrong with the item's data, by top-level field (``""``: the item).

    A missing required property is ``"<field>: missing"``, as the validate pipeline says it.
    """
    found: list[tuple[str, str, str]] = []
    for error in validator.iter_errors(_jsonable(data)):
        parts = list(error.absolute_path)
        required: Any = error.validator_value
        if error.validator == "required" and isinstance(error.instance, dict):
            for name in _missing(required, error.instance):
                full = [*parts, name]
                found.append((str(full[0]), _path(full), "missing"))
            continue
        field = str(parts[0]) if parts else ""
        found.append((field, _path(parts), _short(error.message)))
    problems: dict[str, list[str]] = {}
    for field, path, message in sorted(set(found), key=lambda f: (f[1], f[2])):
        problems.setdefault(field, []).append(f"{path}: {message}" if path else message)
    return problems


def _missing(required: Iterable[Any], instance: Mapping[str, Any]) -> list[str]:
    return [str(name) for name in required if name not in instance]


def _path(parts: Iterable[Any]) -> str:
    """``["tags", 1, "name"]`` -> ``tags[1].name``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _short(message: str) -> str:
    message = " ".join(message.split())
    if len(message) <= _MESSAGE_CHARS:
        return message
    return message[: _MESSAGE_CHARS - 1] + "…"


def _jsonable(value: Any, depth: int = 0) -> Any:
    """The item's data as JSON would carry it: dates as ISO text, Decimals as numbers."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN is not a JSON number
    return value
