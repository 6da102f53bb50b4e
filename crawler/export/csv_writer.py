"""``CsvWriter``: rows as CSV with the crawl's rules (``crawler.csvcell.cell``).

A header row always; ``None`` empty; ``Decimal`` exact; ``bool`` ``true``/``false``; datetimes
ISO 8601 in UTC; lists joined by `` | `` (an inferred table's JSON columns: their JSON text;
bytes: base64); text a spreadsheet would run as a formula prefixed with
``'`` unless neutralising is off. The encoding is strict: a character the chosen encoding cannot
hold fails the export with the row and column, instead of being replaced silently.
"""

from __future__ import annotations

import contextlib
import csv
import io
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import IO, TYPE_CHECKING, Any

from crawler.csvcell import cell
from crawler.export import ExportError
from crawler.export.columns import (
    AnyText,
    BatchConverter,
    Convert,
    JsonValue,
    as_text,
    iso_text,
    to_base64,
    to_decimal,
    to_list,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from crawler.export.columns import Column


def csv_converters(neutralize: bool) -> dict[type, Convert]:
    """``cell()`` of each stored type's value; numbers, flags and dates skip its type tests."""
    text = partial(cell, neutralize_formulas=neutralize)
    return {
        str: text,
        int: str,
        float: str,
        bool: lambda v: "true" if v else "false",
        Decimal: lambda v: format(to_decimal(v), "f"),
        datetime: iso_text,
        list: lambda v: text(to_list(v)),
        JsonValue: lambda v: text(as_text(v)),  # the stored JSON text
        AnyText: lambda v: text(as_text(v)),
        bytes: to_base64,
    }


class CsvWriter:
    def __init__(
        self,
        handle: IO[bytes],
        columns: Sequence[Column],
        *,
        encoding: str = "utf-8",
        neutralize: bool = True,
    ) -> None:
        self.columns = tuple(columns)
        self.encoding = encoding
        self.convert = BatchConverter(columns, csv_converters(neutralize), null="")
        self.text = io.TextIOWrapper(handle, encoding=encoding, errors="strict", newline="")
        self.writer = csv.writer(self.text)
        self._write([[column.output_name for column in self.columns]], 0)

    def write(self, rows: Sequence[Sequence[Any]], first: int) -> None:
        """Write ``rows``; ``first`` is the 1-based number of ``rows[0]`` (for messages)."""
        if rows:
            self._write(list(zip(*self.convert(rows, first), strict=True)), first)

    def _write(self, rows: list[Sequence[str]], first: int) -> None:
        try:
            self.writer.writerows(rows)
        except UnicodeEncodeError as exc:
            raise self._encode_error(rows, first) from exc

    def _encode_error(self, rows: list[Sequence[str]], first: int) -> ExportError:
        for number, row in enumerate(rows, first):
            for column, text in zip(self.columns, row, strict=True):
                try:
                    text.encode(self.encoding)
                except UnicodeEncodeError as exc:
                    where = "the header" if number == 0 else f"row {number}"
                    bad = exc.object[exc.start : exc.end]
                    return ExportError(
                        f"{where}: column {column.name}: {bad!r} cannot be encoded as"
                        f" {self.encoding} (use --encoding utf-8)"
                    )
        return ExportError(f"rows {first}-{first + len(rows) - 1} cannot be encoded")

    def close(self) -> None:
        self.text.flush()
        self.text.detach()  # the caller owns and closes the binary handle

    def abort(self) -> None:
        """Let go of the handle without writing more (the caller discards the file)."""
        with contextlib.suppress(ValueError, OSError):
            self.text.detach()
