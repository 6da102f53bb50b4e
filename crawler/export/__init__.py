"""``scrapy export``: stream an item table of the store into CSV, JSON Lines or Parquet.

Modules: ``config`` (the ``EXPORT_*`` settings), ``columns`` (which columns, of which type),
``query`` (filters as SQL), ``cursor`` (named export cursors), ``atomic`` (publish by rename),
``stream`` (read in chunks, write, count), and one writer per format (``csv_writer``,
``jsonl_writer``, ``parquet_writer``).
"""

from __future__ import annotations

from crawler.exitcodes import EXIT_FAILED, EXIT_USAGE


class ExportError(Exception):
    """The export failed at run time (exit status 1); the message is one line for users."""

    exit_status = EXIT_FAILED


class ExportUsageError(ExportError):
    """The command line asks for something impossible (exit status 2)."""

    exit_status = EXIT_USAGE
