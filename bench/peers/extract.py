"""What every contestant extracts from a product page, with the same parsel expressions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from parsel import Selector

FIELDS: dict[str, str] = {
    "title": "string(//title)",
    "h1": "string(//h1)",
    "price": "string(//p[@class='price'])",
    "description": "string(//div[@class='description'])",
}


def extract(body: bytes) -> dict[str, str]:
    """The four fields of a page (empty text when missing)."""
    selector = Selector(body=body, type="html")
    return {name: selector.xpath(xpath).get("") for name, xpath in FIELDS.items()}


def is_complete(fields: dict[str, str]) -> bool:
    """All four fields present: a "Price on request" page has no price."""
    return all(fields[name].strip() for name in FIELDS) and "request" not in fields["price"]


def read_urls(path: str) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def report(pages: int, complete: int, errors: int, elapsed: float) -> None:
    """The contestant's result line, read by the harness."""
    line = {"pages": pages, "complete": complete, "errors": errors, "elapsed": elapsed}
    print(json.dumps(line), flush=True)


def arguments() -> tuple[str, int]:
    """``URL_FILE [CONCURRENCY]`` from the command line."""
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    return sys.argv[1], concurrency
