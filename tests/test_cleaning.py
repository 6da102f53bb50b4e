"""The pure parsers behind the clean pipeline: text, URLs, prices, numbers, booleans, dates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crawler.cleaning import (
    canonical_url,
    clean_text,
    parse_bool,
    parse_currency,
    parse_datetime,
    parse_float,
    parse_int,
    parse_price,
)

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Salt &amp; Pepper  ", "Salt & Pepper"),
        ("Salt &amp;amp; Pepper", "Salt & Pepper"),  # double-escaped
        ("a\u00a0b\u2003c\u202fd\u3000e", "a b c d e"),  # NBSP and other Unicode spaces
        ("line\none\r\n\ttwo\x0bthree", "line one two three"),  # controls collapse too
        ("nu\x00l", "nul"),  # NUL goes without a space
        ("c1\x85char\x9d", "c1 char"),
        ("lone\ud800surrogate", "lonesurrogate"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("Cafe\u0301 Cre\u0300me", "Café Crème"),  # NFC
        ("&lt;b&gt; &#8211; &eacute;", "<b> – é"),
        ("   ", None),
        ("&nbsp;\n", None),
        ("", None),
    ],
)
def test_clean_text(raw: str, expected: str | None) -> None:
    assert clean_text(raw) == expected
    if expected is not None:
        assert clean_text(expected) == expected  # cleaning twice changes nothing


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Example.COM/a b?b=1&a=2#frag", "http://example.com/a%20b?b=1&a=2"),
        ("https://example.com:443", "https://example.com/"),
        ("http://example.com:80/x", "http://example.com/x"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("https://User:PW@Host.example/x", "https://User:PW@host.example/x"),
        ("http://bücher.example/ü", "http://xn--bcher-kva.example/%C3%BC"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("  http://example.com/p?q=%20\n", "http://example.com/p?q=%20"),
        ("/relative/path", "/relative/path"),
        ("mailto:Someone@Example.com", "mailto:Someone@Example.com"),
        ("", None),
    ],
)
def test_canonical_url(raw: str, expected: str | None) -> None:
    assert canonical_url(raw) == expected


PRICES = [
    ("$1,234.56", "1234.56"),
    ("1.234,56 €", "1234.56"),
    ("1 234,56", "1234.56"),
    ("1\u00a0234,56\u00a0€", "1234.56"),
    ("1\u202f234,56 €", "1234.56"),
    ("CHF 1'234.50", "1234.50"),
    ("CHF 1’234.50", "1234.50"),
    ("12,50", "12.50"),
    ("12.50", "12.50"),
    ("12.5", "12.5"),
    ("1,23", "1.23"),
    ("1,234", "1234"),
    ("1.234", "1234"),
    ("£1,000", "1000"),
    ("1,234,567.89", "1234567.89"),
    ("1.234.567,89", "1234567.89"),
    ("1234,567", "1234.567"),  # four digits before: not a thousands group
    ("0.125", "0.125"),
    (".50", "0.50"),
    ("USD 1234.56", "1234.56"),
    ("1234.56 EUR", "1234.56"),
    ("GBP12", "12"),
    ("¥1500", "1500"),
    ("-$5.00", "-5.00"),
    ("$-5.00", "-5.00"),
    ("- USD 5", "-5"),
    ("−7.5 €", "-7.5"),
    ("Price: $19.99", "19.99"),
    ("0.1", "0.1"),  # exact: never through float
    ("Price on request", None),
    ("was $15, now $12", None),
    ("12.99 (20% off)", None),
    ("1.2.3", None),
    ("free", None),
    ("", None),
]


@pytest.mark.parametrize(("raw", "expected"), PRICES)
def test_parse_price(raw: str, expected: str | None) -> None:
    value = parse_price(raw)
    if expected is None:
        assert value is None
    else:
        assert isinstance(value, Decimal)
        assert str(value) == expected


def test_parse_price_with_a_known_decimal_separator() -> None:
    assert parse_price("1.234", decimal_sep=".") == Decimal("1.234")
    assert parse_price("1,234", decimal_sep=",") == Decimal("1.234")
    assert parse_price("1.234,5", decimal_sep=",") == Decimal("1234.5")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$12", "USD"),
        ("US$12", "USD"),
        ("C$12", "CAD"),
        ("A$ 12", "AUD"),
        ("12 €", "EUR"),
        ("£12", "GBP"),
        ("¥12", "JPY"),
        ("CN¥12", "CNY"),
        ("R$ 12,00", "BRL"),
        ("12 zł", "PLN"),
        ("₹12", "INR"),
        ("CHF 12", "CHF"),
        ("12.00 EUR", "EUR"),
        ("CAD $12", "CAD"),  # a code says more than "$"
        ("12", None),
        ("try it", None),  # codes only count in capitals
        ("", None),
    ],
)
def test_parse_currency(raw: str, expected: str | None) -> None:
    assert parse_currency(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,234", 1234),
        ("1,234 reviews", 1234),
        ("42", 42),
        ("-3", -3),
        ("3.0", 3),
        ("1.5", None),
        ("Item-12", 12),  # a hyphen inside a word is not a minus
        ("none", None),
        ("", None),
    ],
)
def test_parse_int(raw: str, expected: int | None) -> None:
    value = parse_int(raw)
    assert value == expected
    assert value is None or type(value) is int


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("4.5 out of 5", 4.5),
        ("4,5", 4.5),
        ("Rated 3 stars", 3.0),
        ("-0.25", -0.25),
        ("1,234.5", 1234.5),
        ("n/a", None),
    ],
)
def test_parse_float(raw: str, expected: float | None) -> None:
    value = parse_float(raw)
    assert value == expected
    assert value is None or type(value) is float


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("In stock", True),
        ("  IN STOCK  ", True),
        ("In stock - ships today", True),
        ("instock", True),
        ("Available", True),
        ("yes", True),
        ("True", True),
        ("1", True),
        ("https://schema.org/InStock", True),
        ("Out of stock", False),
        ("Sold out!", False),
        ("Unavailable", False),
        ("not available", False),
        ("NO", False),
        ("false", False),
        ("0", False),
        ("http://schema.org/OutOfStock", False),
        ("n/a", None),
        ("maybe", None),
        ("10", None),
        ("", None),
    ],
)
def test_parse_bool(raw: str, expected: bool | None) -> None:
    assert parse_bool(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-06", datetime(2024, 5, 6, tzinfo=UTC)),
        ("2024-05-06T07:08:09Z", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("2024-05-06T07:08:09+02:00", datetime(2024, 5, 6, 5, 8, 9, tzinfo=UTC)),
        ("2024-05-06 07:08", datetime(2024, 5, 6, 7, 8, tzinfo=UTC)),  # no offset: UTC
        ("yesterday", None),
        ("", None),
    ],
)
def test_parse_datetime(raw: str, expected: datetime | None) -> None:
    value = parse_datetime(raw)
    assert value == expected
    assert value is None or value.tzinfo is UTC
