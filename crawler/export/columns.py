"""Which columns an export has and what type each holds.

Types come from the item class that owns the table (``EXPORT_ITEM_CLASSES``): ``Decimal``,
``datetime``, ``bool`` and ``list`` survive the trip through SQLite's TEXT and INTEGER columns.
The store's bookkeeping columns have fixed types. A table no known class owns falls back to the
declared SQLite types (INTEGER -> int, REAL -> float, anything else -> str).
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Column:
    name: str
    kind: type  # str, int, float, bool, Decimal, datetime or list
    scale: int | None = None  # Decimal: decimal places declared with metadata={"scale": N}


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
    by_name = {column.name: column for column in columns}
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


def to_list(value: Any) -> list[Any]:
    decoded = json.loads(value) if isinstance(value, str) else value
    if not isinstance(decoded, list):
        raise ValueError("not a JSON list")
    return decoded


Convert = Callable[[Any], Any]
DECODERS: dict[type, Convert] = {
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
