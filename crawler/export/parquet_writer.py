"""``ParquetWriter``: rows as Parquet with real column types, one row group per N rows.

Types: ``str`` string, ``int`` int64, ``float`` float64, ``bool`` bool, ``datetime``
timestamp[us, UTC], ``list`` list<string>, ``Decimal`` decimal128(38, S): S is the field's
declared ``metadata={"scale": S}``, else the most decimal places among the exported values;
values too wide for 38 digits make it decimal256(76, S). Nothing is rounded: a value that does
not fit fails the export. Conversions run column-wise in Arrow; a batch Arrow refuses is
converted value by value to name the row and column at fault. An inferred table's JSON column
gets the type Arrow finds for all its decoded values (lists, structs; string, the JSON text,
when they have none in common; found by reading the column once first), bytes binary.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from crawler.export import ExportError
from crawler.export.columns import (
    AnyText,
    JsonValue,
    as_text,
    from_json,
    to_datetime,
    to_decimal,
    to_list,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from crawler.export.columns import Column

DECIMAL128_DIGITS = 38
DECIMAL256_DIGITS = 76
_ARROW: dict[type, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: pa.timestamp("us", tz="UTC"),
    list: pa.list_(pa.string()),
    AnyText: pa.string(),
    bytes: pa.binary(),
}
_PYTHON: dict[type, Callable[[Any], Any]] = {
    AnyText: as_text,
    bool: bool,
    Decimal: to_decimal,
    datetime: to_datetime,
    list: to_list,
}


def json_type(values: Sequence[Any]) -> pa.DataType:
    """The Arrow type of an inferred JSON column's decoded values (lists, structs), or string
    (the JSON text) when Arrow cannot give them one type."""
    try:
        arrow_type = pa.array([None if v is None else from_json(v) for v in values]).type
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return pa.string()
    return pa.string() if pa.types.is_null(arrow_type) else arrow_type


def decimal_type(digits: int, scale: int) -> pa.DataType:
    """The Arrow decimal that holds ``digits`` integer digits with ``scale`` places."""
    if digits + scale <= DECIMAL128_DIGITS:
        return pa.decimal128(DECIMAL128_DIGITS, scale)
    if digits + scale <= DECIMAL256_DIGITS:
        return pa.decimal256(DECIMAL256_DIGITS, scale)
    raise ExportError(f"a decimal with {digits + scale} digits does not fit Parquet's 76")


def arrow_schema(columns: Sequence[Column], decimals: Mapping[str, pa.DataType]) -> pa.Schema:
    return pa.schema(
        [
            pa.field(
                c.output_name,
                decimals[c.name] if c.kind in (Decimal, JsonValue) else _ARROW[c.kind],
            )
            for c in columns
        ]
    )


class ParquetWriter:
    def __init__(
        self,
        handle: IO[bytes],
        columns: Sequence[Column],
        *,
        decimals: Mapping[str, pa.DataType],
        row_group_rows: int = 100_000,
        compression: str = "zstd",
    ) -> None:
        self.columns = tuple(columns)
        self.schema = arrow_schema(columns, decimals)
        self.row_group_rows = row_group_rows
        self.writer = pq.ParquetWriter(handle, self.schema, compression=compression)
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0

    def write(self, rows: Sequence[Sequence[Any]], first: int) -> None:
        """Convert ``rows`` (numbered from ``first``) and write whole row groups as they fill."""
        if not rows:
            return
        columns = zip(*rows, strict=True)
        arrays = [
            self._array(index, column, list(values), first)
            for index, (column, values) in enumerate(zip(self.columns, columns, strict=True))
        ]
        self.pending.append(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.pending_rows += len(rows)
        if self.pending_rows >= self.row_group_rows:
            self._flush()

    def _array(self, index: int, column: Column, values: list[Any], first: int) -> pa.Array:
        arrow_type = self.schema.field(index).type
        try:
            if column.kind in (Decimal, datetime):  # stored as text: let Arrow parse it
                return pa.array(values, pa.string()).cast(arrow_type)
            if column.kind is bool:
                return pa.array(values, pa.int64()).cast(arrow_type)
            if column.kind is list:
                return pa.array([None if v is None else to_list(v) for v in values], arrow_type)
            if column.kind is JsonValue and arrow_type != pa.string():
                return pa.array([None if v is None else from_json(v) for v in values], arrow_type)
            if column.kind is AnyText:
                return pa.array([None if v is None else as_text(v) for v in values], arrow_type)
            return pa.array(values, arrow_type)
        except (pa.ArrowException, ValueError, TypeError):
            return self._slow_array(column, arrow_type, values, first)

    def _slow_array(
        self, column: Column, arrow_type: pa.DataType, values: list[Any], first: int
    ) -> pa.Array:
        """Value by value in Python: odd but valid values pass, a bad one is named."""
        convert = _PYTHON.get(column.kind)
        converted: list[Any] = []
        for number, value in enumerate(values, first):
            try:
                item = value if value is None or convert is None else convert(value)
                pa.array([item], arrow_type)
            except (pa.ArrowException, ValueError, TypeError, ArithmeticError) as exc:
                kind = str(arrow_type) if column.kind is Decimal else column.kind.__name__
                raise ExportError(
                    f"row {number}: column {column.name}: cannot write {value!r} as {kind}: {exc}"
                ) from exc
            converted.append(item)
        return pa.array(converted, arrow_type)

    def _flush(self) -> None:
        if self.pending:
            table = pa.Table.from_batches(self.pending, schema=self.schema)
            self.writer.write_table(table, row_group_size=self.pending_rows)
            self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        """Write the last row group and the footer (without it the file is not Parquet)."""
        self._flush()
        self.writer.close()

    def abort(self) -> None:
        """Close the Arrow writer while its file is still open (the caller discards the file)."""
        self.pending = []
        with contextlib.suppress(Exception):
            self.writer.close()
