"""``JsonlWriter``: one JSON object per row and line, UTF-8.

Keys are the column names in order; ``None`` is ``null``, ``bool`` ``true``/``false``,
``Decimal`` an exact string (``"1234.50"``: a JSON number would be read back as a float),
datetimes ISO 8601 strings in UTC, lists arrays; an inferred table's JSON columns arrays and
objects, bytes base64 text.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

from crawler.export import ExportError
from crawler.export.columns import DECODERS, BatchConverter, Convert, iso_text, to_decimal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from crawler.export.columns import Column

JSON_CONVERTERS: dict[type, Convert] = DECODERS | {
    Decimal: lambda v: format(to_decimal(v), "f"),
    datetime: iso_text,
}


class JsonlWriter:
    def __init__(self, handle: IO[bytes], columns: Sequence[Column]) -> None:
        self.handle = handle
        self.names = tuple(column.output_name for column in columns)
        self.convert = BatchConverter(columns, JSON_CONVERTERS)
        self.encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode

    def write(self, rows: Sequence[Sequence[Any]], first: int) -> None:
        """Write ``rows``; ``first`` is the 1-based number of ``rows[0]`` (for messages)."""
        if not rows:
            return
        names, encode = self.names, self.encode
        lines = []
        for number, row in enumerate(zip(*self.convert(rows, first), strict=True), first):
            try:
                lines.append(encode(dict(zip(names, row, strict=True))))
            except ValueError as exc:  # NaN or infinity: not JSON
                raise ExportError(f"row {number}: {exc}") from exc
        lines.append("")
        self.handle.write("\n".join(lines).encode("utf-8"))

    def close(self) -> None:
        """Nothing to finish: every line is complete when written."""

    def abort(self) -> None:
        """Nothing to let go of."""
