"""Pure functions that turn scraped text into clean, typed values (no Scrapy in here).

Every parser takes text and returns the typed value, or ``None`` when the text does not say one
clearly; deciding what to do with a failure is the caller's job (see ``CleanPipeline``).
"""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from w3lib.url import safe_url_string

# --- Text ---------------------------------------------------------------------------------------

# C0, DEL and C1 controls (tab and newline included) become a space; NUL goes entirely.
# Unicode spaces (NBSP, thin, ideographic, line/paragraph separators) become a plain space.
# Invisible zero-width space, word joiner and BOM go; ZWJ/ZWNJ stay (emoji and scripts need them).
_SPACES = [0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
_TEXT_TABLE: dict[int, str | None] = {
    **dict.fromkeys([*range(0x20), 0x7F, *range(0x80, 0xA0), *_SPACES], " "),
    **dict.fromkeys([0x00, 0x200B, 0x2060, 0xFEFF]),
}
_SURROGATES = re.compile("[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")


def clean_text(value: str) -> str | None:
    """One line of clean text, or ``None`` when nothing is left.

    HTML entities are unescaped until none are left (so ``&amp;amp;`` is ``&`` and cleaning twice
    changes nothing), controls and Unicode spaces become spaces, NUL and lone surrogates go, the
    text is NFC-normalised, and runs of whitespace collapse to one space.
    """
    for _ in range(5):
        unescaped = html.unescape(value)
        if unescaped == value:
            break
        value = unescaped
    value = _SURROGATES.sub("", value.translate(_TEXT_TABLE))
    value = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", value)).strip()
    return value or None


# --- URLs ---------------------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:]*)(?::([0-9]*))?")


def canonical_url(value: str) -> str | None:
    """A predictable form of a URL, or ``None`` for empty text.

    Clean text, then ``w3lib.url.safe_url_string`` (percent-encodes unsafe characters, IDNA
    host); lower-case scheme and host; drop the default port and the ``#fragment``; an empty
    http(s) path becomes ``/``. The query is kept as it is (not sorted): two URLs that differ only
    in parameter order stay different, as the server may treat them differently.
    """
    text = clean_text(value)
    if text is None:
        return None
    parts = urlsplit(safe_url_string(text))
    scheme = parts.scheme.lower()
    userinfo, at, hostport = parts.netloc.rpartition("@")
    match = _HOST_PORT.fullmatch(hostport)
    host, port = (match.group(1), match.group(2)) if match else (hostport, None)
    if port is not None and port in ("", _DEFAULT_PORTS.get(scheme)):
        port = None
    netloc = f"{userinfo}{at}{host.lower()}" + (f":{port}" if port is not None else "")
    path = parts.path or ("/" if scheme in _DEFAULT_PORTS and netloc else "")
    return urlunsplit((scheme, netloc, path, parts.query, ""))


# --- Numbers ------------------------------------------------------------------------------------

# A number as written in a page: digits with optional "," or "." separators, and thousands
# groups separated by a space or an apostrophe ("1 234,56", "1'234.50"), or starting with the
# decimal separator (".5").
_NUMBER = re.compile(r"(?<![0-9])(?:[0-9]+|(?=[.,][0-9]))(?:[ '’][0-9]{3}(?![0-9])|[.,][0-9]+)*")
# A minus sign (not a hyphen inside a word) right before the number, maybe with a currency between.
_MINUS = re.compile(r"(?<!\w)[-−]\s*(?:[A-Z]{0,3}[^\w\s]{1,2}|[A-Z]{3})?\s*$")
_SPACED = re.compile("[ '’]")
_GROUPED = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})*")


def _decimal_sep(token: str) -> str:
    """Which of ``.`` and ``,`` is the decimal point of a token without space groups."""
    dot, comma = token.rfind("."), token.rfind(",")
    if dot >= 0 and comma >= 0:  # "1,234.56" / "1.234,56": the last one
        return "." if dot > comma else ","
    sep = "," if comma >= 0 else "."
    whole, _, fraction = token.partition(sep)
    repeated = token.count(sep) > 1  # "1,234,567"
    grouped = len(fraction) == 3 and 1 <= len(whole) <= 3 and whole != "0"  # "1,234"
    return ("," if sep == "." else ".") if repeated or grouped else sep


def _number(token: str, decimal_sep: str | None) -> Decimal | None:
    """The value of one ``_NUMBER`` token."""
    spaced = _SPACED.search(token) is not None
    token = _SPACED.sub("", token)
    if decimal_sep is None:  # after "1 234" groups, a single "," or "." is the decimal point
        decimal_sep = ("," if "," in token else ".") if spaced else _decimal_sep(token)
    thousands = "," if decimal_sep == "." else "."
    whole, _, fraction = token.partition(decimal_sep)
    if decimal_sep in fraction or thousands in fraction:
        return None
    if thousands in whole and not _GROUPED.fullmatch(whole.replace(thousands, ",")):
        return None
    whole = whole.replace(thousands, "") or "0"
    return Decimal(f"{whole}.{fraction}" if fraction else whole)


def _numbers(text: str, decimal_sep: str | None, limit: int) -> list[Decimal | None]:
    """Up to ``limit`` numbers of the text, in order (``None`` for a malformed one)."""
    text = clean_text(text) or ""
    values: list[Decimal | None] = []
    for match in _NUMBER.finditer(text):
        value = _number(match.group(), decimal_sep)
        if value is not None and _MINUS.search(text, max(0, match.start() - 10), match.start()):
            value = -value
        values.append(value)
        if len(values) == limit:
            break
    return values


def parse_price(text: str, decimal_sep: str | None = None) -> Decimal | None:
    """The one amount in a price text, exactly (never through ``float``), or ``None``.

    ``"$1,234.56"``, ``"1.234,56 €"``, ``"1 234,56"`` and ``"USD 1234.56"`` are all
    ``Decimal("1234.56")``; ``"12,50"`` is ``12.50``; ``"-€5"`` is ``-5``. A single separator
    followed by exactly three digits is a thousands separator (``"1,234"`` and ``"1.234"`` are
    1234) unless ``decimal_sep`` says otherwise. Text with no number or with more than one
    (``"Price on request"``, ``"was $15, now $12"``) is ``None``: guessing would be worse.
    """
    values = _numbers(text, decimal_sep, limit=2)
    return values[0] if len(values) == 1 else None


def _first_number(text: str) -> Decimal | None:
    values = _numbers(text, None, limit=1)
    return values[0] if values else None


def parse_int(text: str) -> int | None:
    """The first number in the text when it is whole: ``"1,234 reviews"`` -> 1234."""
    value = _first_number(text)
    return int(value) if value is not None and value == value.to_integral_value() else None


def parse_float(text: str) -> float | None:
    """The first number in the text: ``"4.5 out of 5"`` -> 4.5, ``"4,5"`` -> 4.5."""
    value = _first_number(text)
    return float(value) if value is not None else None


# --- Currency -----------------------------------------------------------------------------------

_SYMBOLS = {  # longest first, so "US$" wins over "$"
    "US$": "USD", "CA$": "CAD", "AU$": "AUD", "NZ$": "NZD", "HK$": "HKD", "MX$": "MXN",
    "CN¥": "CNY", "R$": "BRL", "C$": "CAD", "A$": "AUD", "S$": "SGD", "zł": "PLN", "Kč": "CZK",
    "$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "₩": "KRW", "₽": "RUB",
    "₺": "TRY", "₪": "ILS", "₫": "VND", "₱": "PHP", "฿": "THB", "₴": "UAH", "元": "CNY",
}  # fmt: skip
_CODES = frozenset({
    "USD", "EUR", "GBP", "JPY", "CNY", "INR", "CAD", "AUD", "NZD", "CHF", "SEK", "NOK", "DKK",
    "PLN", "CZK", "HUF", "RON", "BGN", "BRL", "MXN", "ARS", "CLP", "COP", "HKD", "SGD", "KRW",
    "TWD", "THB", "IDR", "MYR", "PHP", "VND", "RUB", "UAH", "TRY", "ILS", "AED", "SAR", "ZAR",
})  # fmt: skip
_CODE = re.compile(r"(?<![A-Za-z])[A-Z]{3}(?![A-Za-z])")


def parse_currency(text: str) -> str | None:
    """The ISO 4217 code a price text names: a code (``"CHF 12"``) or a symbol (``"€"``).

    Codes are matched in capitals as whole words. ``$`` alone means USD and ``¥`` alone JPY; a
    prefixed symbol (``C$``, ``A$``, ``CN¥``) says which one.
    """
    for match in _CODE.finditer(text):
        if match.group() in _CODES:
            return match.group()
    for symbol, code in _SYMBOLS.items():
        if symbol in text:
            return code
    return None


# --- Booleans and dates -------------------------------------------------------------------------

_TRUE = re.compile(
    r"(?:true|yes|1|on)$|(?:in ?stock|available|limited ?availability|in ?store ?only)\b"
)
_FALSE = re.compile(
    r"(?:false|no|0|off)$|(?:out ?of ?stock|sold ?out|unavailable|not available|discontinued)\b"
)


def parse_bool(text: str) -> bool | None:
    """Yes/no, true/false, 1/0, on/off, or availability words, in any case.

    Availability may start a longer text (``"In stock - ships today"``, ``"Sold out!"``); a
    schema.org availability URL counts by its last segment (``https://schema.org/OutOfStock``).
    """
    words = (clean_text(text) or "").lower().rstrip("/.!").rpartition("schema.org/")[2]
    if _FALSE.match(words):
        return False
    if _TRUE.match(words):
        return True
    return None


DATE_ORDERS = ("DMY", "MDY", "")  # CLEAN_DATE_ORDER: day first, month first, or neither

# All-numeric day and month before a year, anywhere in the text: "03/04/2026", "on 3-4-26".
_NUMERIC_DATE = re.compile(
    r"(?<![0-9])([0-9]{1,2})[./-]([0-9]{1,2})[./-](?:[0-9]{4}|[0-9]{2})(?![0-9])"
)
# dateparser reads absolute dates only: "2 hours ago" depends on when it is read, and a date
# without a day or a year is not filled in from today.
_DATEPARSER_SETTINGS: dict[str, Any] = {
    "PARSERS": ["custom-formats", "absolute-time"],
    "REQUIRE_PARTS": ["day", "month", "year"],
    "TIMEZONE": "UTC",
    "TO_TIMEZONE": "UTC",
    "RETURN_AS_TIMEZONE_AWARE": True,
}


def _numeric_order(text: str, date_order: str) -> str | None:
    """The day/month order of an all-numeric date: ``"DMY"``, ``"MDY"``, ``""`` when it does not
    matter or cannot be known, ``None`` for text that is not one."""
    match = _NUMERIC_DATE.search(text)
    if match is None:
        return None
    first, second = int(match.group(1)), int(match.group(2))
    if first > 12:
        return "DMY"
    if second > 12:
        return "MDY"
    return date_order if first != second else "DMY"


def date_order(value: str) -> str:
    """A checked ``CLEAN_DATE_ORDER``: ``"DMY"``, ``"MDY"`` or ``""``; raises ``ValueError``."""
    order = value.strip().upper()
    if order not in DATE_ORDERS:
        raise ValueError(f"CLEAN_DATE_ORDER must be one of 'DMY', 'MDY' or '', not {value!r}")
    return order


def ambiguous_date(text: str, date_order: str = "") -> bool:
    """Is this an all-numeric date whose day and month could be swapped (``"03/04/2026"``)?

    ``date_order`` (``"DMY"`` or ``"MDY"``) says which one it is; ``""`` says nothing.
    """
    return _numeric_order((clean_text(text) or ""), date_order) == ""


def parse_datetime(text: str, date_order: str = "") -> datetime | None:
    """A date or date-time as an aware UTC datetime; a time without an offset is taken as UTC.

    ISO 8601 first; then written dates through ``dateparser`` (``"Nov 25, 2026"``,
    ``"25.11.2026"``, ``"25 November 2026"``, other languages too). An all-numeric date whose day
    and month can both be 12 or less (``"03/04/2026"``) is ``None`` unless ``date_order``
    (``"DMY"`` or ``"MDY"``) says which comes first. Relative dates (``"yesterday"``) and dates
    without a day or year are ``None``.
    """
    text = clean_text(text) or ""
    value: datetime | None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = _written_date(text, date_order)
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _written_date(text: str, date_order: str) -> datetime | None:
    if not text or text.isdigit():  # "12" or "20261125" is a number, not a date
        return None
    order = _numeric_order(text, date_order)
    if order == "":
        return None  # ambiguous: guessing would store a wrong date for some pages
    settings = _DATEPARSER_SETTINGS
    if order or date_order:
        settings = {**settings, "DATE_ORDER": order or date_order}
    import dateparser  # here: 60 ms of imports that most crawls never need

    return dateparser.parse(text, settings=settings)
