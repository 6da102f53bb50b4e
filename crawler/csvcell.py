"""``cell``: the CSV text of one value, the same for the crawl's CSV files and ``scrapy export``.

Numbers, flags and dates get one canonical spelling; lists are joined with ``LIST_SEPARATOR``;
text a spreadsheet would run as a formula (``= + - @``, tab, CR first) is prefixed with ``'`` when
``neutralize_formulas`` (``CSV_NEUTRALIZE_FORMULAS``); NUL characters are dropped.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

LIST_SEPARATOR = " | "
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any, neutralize_formulas: bool = True) -> str:
    """The CSV text of one value (numbers are never neutralised; text starting ``=`` may be)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")  # exact and never in exponent notation
    if isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, (list, tuple)):
        text = LIST_SEPARATOR.join(cell(element, False) for element in value)
    else:
        text = str(value)
    text = text.replace("\x00", "")
    if neutralize_formulas and text.startswith(_FORMULA_START):
        return f"'{text}"
    return text
