"""Which columns an export has and what type each holds.

Types come from the item class that owns the table (``EXPORT_ITEM_CLASSES``): ``Decimal``,
``datetime``, ``bool`` and ``list`` survive the trip through SQLite's TEXT and INTEGER columns.
A table inferred from schema-less items (``crawler.storage.inferred``) exports its columns under
their original keys (``label``; a key that would clash with a bookkeeping column keeps its column
name), with the kind recorded for each: ``json`` columns come back as lists and objects
(``JsonValue``), ``text`` ones as text (``AnyText``: a column widened from numbers), ``bytes``
as base64 (JSONL, CSV) or binary (Parquet).
The store's bookkeeping columns have fixed types. A table no known class owns falls back to the
declared SQLite types (INTEGER -> int, REAL -> float, anything else -> str).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from crawler.export import ExportError, ExportUsageError
from crawler.items import field_specs, item_table

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

BOOKKEEPING_TYPES: dict[str, type] = {
    "first_run_id": int,
    "last_run_id": int,
    "first_seen_at": datetime,
    "last_seen_at": datetime,
    "changed_at": datetime,
    "row_hash": str,
}
_DECLARED: dict[str, type] = {"INTEGER": int, "REAL": float}


class JsonValue:
    """The kind of an inferred column holding JSON text (lists, objects)."""


class AnyText:
    """The kind of an inferred text column: its values may also be numbers stored earlier."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: type  # str, int, float, bool, Decimal, datetime, list, bytes, JsonValue or AnyText
    scale: int | None = None  # Decimal: decimal places declared with metadata={"scale": N}
    label: str | None = None  # the name in the output (an inferred column's original key)

    @property
    def output_name(self) -> str:
        return self.name if self.label is None else self.label


INFERRED_KINDS: dict[str | None, type] = {
    "bool": bool,
    "int": int,
    "float": float,
    "text": AnyText,
    "json": JsonValue,
    "bytes": bytes,
    None: AnyText,
}


def inferred_columns(
    declared: dict[str, str], inferred: Sequence[tuple[str, str, str | None]]
) -> list[Column]:
    """The columns of an inferred table: ``inferred`` (column, original key, kind) in order,
    then the bookkeeping columns, ``_key`` and ``_extra``; anything else as declared."""
    fixed = {**BOOKKEEPING_TYPES, "_key": str, "_extra": JsonValue}
    columns = []
    for name, key, kind in inferred:
        if name in declared:
            label = name if key in fixed else key
            columns.append(Column(name, INFERRED_KINDS.get(kind, AnyText), label=label))
    known = {column.name for column in columns}
    columns += [Column(n, kind) for n, kind in fixed.items() if n in declared]
    known |= fixed.keys()
    columns += [Column(n, _DECLARED.get(t, str)) for n, t in declared.items() if n not in known]
    return columns


def item_class_for(table: str, classes: Iterable[type]) -> type | None:
    return next((cls for cls in classes if item_table(cls) == table), None)


def export_columns(declared: dict[str, str], item_cls: type | None) -> list[Column]:
    """Every column of a table (``{name: declared type}``): the item's fields first."""
    known: dict[str, Column] = {}
    if item_cls is not None:
        scales = {f.name: f.metadata.get("scale") for f in dataclasses.fields(item_cls)}
        for spec in field_specs(item_cls):
            known[spec.name] = Column(spec.name, spec.type, scales.get(spec.name))
    for name, kind in BOOKKEEPING_TYPES.items():
        known.setdefault(name, Column(name, kind))
    ordered = [column for name, column in known.items() if name in declared]
    extra = [Column(name, _DECLARED.get(sql, str)) for name, sql in declared.items()]
    return ordered + [column for column in extra if column.name not in known]


def pick(columns: Sequence[Column], fields: Sequence[str]) -> list[Column]:
    """The columns named in ``fields``, in that order; ``ExportUsageError`` on an unknown one."""
    by_name = {column.output_name: column for column in columns}
    by_name |= {column.name: column for column in columns if column.name not in by_name}
    if unknown := [name for name in fields if name not in by_name]:
        valid = ", ".join(by_name)
        raise ExportUsageError(f"unknown field(s) {', '.join(unknown)}; valid fields: {valid}")
    if len(set(fields)) != len(fields):
        raise ExportUsageError("--fields names a field twice")
    return [by_name[name] for name in fields]


def to_datetime(value: Any) -> datetime:
    """A stored timestamp (ISO text) as an aware UTC datetime; naive text is taken as UTC."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso_text(value: Any) -> str:
    """A stored timestamp as ISO 8601 text in UTC; the store's own UTC text passes as it is."""
    if isinstance(value, str) and value.endswith("+00:00"):
        return value
    return to_datetime(value).isoformat()


def to_decimal(value: Any) -> Decimal:
    return Decimal(value) if isinstance(value, str | int) else Decimal(str(value))


def from_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value if isinstance(value, str) else str(value)


def to_base64(value: Any) -> str:
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else str(value)


def to_list(value: Any) -> list[Any]:
    decoded = json.loads(value) if isinstance(value, str) else value
    if not isinstance(decoded, list):
        raise ValueError("not a JSON list")
    return decoded


Convert = Callable[[Any], Any]
DECODERS: dict[type, Convert] = {
    JsonValue: from_json,
    AnyText: as_text,
    bytes: to_base64,
    bool: bool,
    Decimal: to_decimal,
    datetime: to_datetime,
    list: to_list,
}


def decode_error(column: Column, value: Any, row: int, exc: Exception) -> ExportError:
    reason = "invalid decimal" if isinstance(exc, InvalidOperation) else str(exc)
    kind = column.kind.__name__
    return ExportError(
        f"row {row}: column {column.name}: cannot read {value!r} as {kind}: {reason}"
    )


class BatchConverter:
    """Converts a chunk of stored rows column by column, one function per column type.

    ``converters`` maps a column type to what one stored, non-NULL value becomes (a type it
    does not name keeps its values as stored); NULL becomes ``null``. The result is a list of
    columns; a value a converter refuses fails with its row and column.
    """

    def __init__(
        self, columns: Sequence[Column], converters: Mapping[type, Convert], null: Any = None
    ) -> None:
        self.columns = tuple(columns)
        self.converters = [converters.get(column.kind) for column in self.columns]
        self.null = null

    def __call__(self, rows: Sequence[Sequence[Any]], first: int) -> list[Sequence[Any]]:
        """The columns of ``rows``, converted; ``first`` is the 1-based number of ``rows[0]``."""
        null = self.null
        columns: list[Sequence[Any]] = []
        for index, values in enumerate(zip(*rows, strict=True)):
            convert = self.converters[index]
            if convert is None:
                columns.append(values)
                continue
            try:
                columns.append([null if v is None else convert(v) for v in values])
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise self._locate(index, values, first) from exc
        return columns

    def _locate(self, index: int, values: Sequence[Any], first: int) -> ExportError:
        column, convert = self.columns[index], self.converters[index]
        assert convert is not None
        for number, value in enumerate(values, first):
            try:
                if value is not None:
                    convert(value)
            except (ValueError, TypeError, ArithmeticError) as exc:
                return decode_error(column, value, number, exc)
        return ExportError(f"rows {first}-{first + len(values) - 1}: column {column.name}")
