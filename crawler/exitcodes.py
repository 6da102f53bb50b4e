"""The exit statuses of every ``scrapy`` command of the project (see the README's Exit status)."""

from __future__ import annotations

EXIT_OK = 0  # the run (or command) worked
EXIT_FAILED = 1  # it ran and failed: a health check, the store, the CSV, a crawl of a schedule
EXIT_USAGE = 2  # bad input, reported in one line starting with "error:"
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT), as shells report it
