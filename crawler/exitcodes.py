"""The exit statuses of every ``scrapy`` command of the project (see the README's Exit status)."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

from crawler.exceptions import ArgumentError

if TYPE_CHECKING:
    from collections.abc import Iterator

EXIT_OK = 0  # the run (or command) worked
EXIT_FAILED = 1  # it ran and failed: a health check, the store, the CSV, a crawl of a schedule
EXIT_USAGE = 2  # bad input, reported in one line starting with "error:"
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT), as shells report it


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """An ``ArgumentError`` raised inside becomes its one ``error:`` line and exit status 2."""
    try:
        yield
    except ArgumentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
