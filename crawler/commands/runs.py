"""``scrapy runs [ID]``: the crawl history recorded in the store.

Without an ID: the latest runs (a table on a terminal, aligned plain text otherwise). With an ID:
one run in detail, with its arguments, settings and sorted stats, shown through the secret
policy (``crawler.safety.secrets``) again: a row recorded in clear (by an older version or by
hand) prints ``***`` for its secrets too. The store is opened read-only,
so this never creates or changes a database. Errors are one line starting ``error:``: exit
status 2 for bad input, 1 for a missing store or an unknown run.
"""

from __future__ import annotations

import sys
from contextlib import closing
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand

from crawler import defaults
from crawler.addon import install_defaults
from crawler.exitcodes import EXIT_FAILED, EXIT_USAGE
from crawler.export.columns import to_datetime
from crawler.safety.secrets import Redactor, mask_url_credentials, masked
from crawler.storage.reads import get_run, list_runs, open_readonly
from crawler.storage.schema import to_json
from crawler.storage.store import StoreError

if TYPE_CHECKING:
    import argparse

HEADERS = (
    *("id", "spider", "started (UTC)", "duration", "finish reason"),
    *("pages", "items", "rejects", "errors", "exit"),
)
NUMERIC = frozenset({"id", "pages", "items", "rejects", "errors", "exit"})


class RunsError(Exception):
    def __init__(self, message: str, exit_status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def when(value: Any) -> str:
    """A stored timestamp as ``2026-11-25 12:00:00`` (UTC), or ``-``."""
    try:
        return to_datetime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"
    except ValueError:
        return str(value)


def duration(run: dict[str, Any]) -> str:
    """``6.2 s``, ``3 m 05 s``, ``2 h 03 m``; ``-`` for a run that never finished."""
    try:
        seconds = (to_datetime(run["finished_at"]) - to_datetime(run["started_at"])).total_seconds()
    except (TypeError, ValueError):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} m"


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def summary_row(run: dict[str, Any]) -> tuple[str, ...]:
    reason = run.get("finish_reason") or "(unfinished)"
    counts = [_count(run.get(k)) for k in ("pages", "items", "rejects", "errors", "exit_status")]
    return (
        str(run["id"]),
        str(run["spider"]),
        when(run.get("started_at")),
        duration(run),
        reason,
        *counts,
    )


def plain_table(rows: list[tuple[str, ...]]) -> str:
    """Columns aligned with spaces: numbers to the right, text to the left."""
    widths = [max(len(r[i]) for r in (HEADERS, *rows)) for i in range(len(HEADERS))]
    lines = []
    for row in (HEADERS, *rows):
        cells = [
            cell.rjust(width) if name in NUMERIC else cell.ljust(width)
            for name, cell, width in zip(HEADERS, row, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def rich_table(rows: list[tuple[str, ...]]) -> bool:
    """Print a table with rich; ``False`` if rich is not installed."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return False
    table = Table(box=None, header_style="bold")
    for name in HEADERS:
        numeric = name in NUMERIC  # numbers never wrap; text wraps on a narrow terminal
        table.add_column(name, justify="right" if numeric else "left", no_wrap=numeric)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    return True


def _value(value: Any) -> str:
    return value if isinstance(value, str) else to_json(value)


def _mapping(title: str, values: Any) -> list[str]:
    if not isinstance(values, dict) or not values:
        return [f"{title}: (none)"]
    width = max(len(str(key)) for key in values)
    return [f"{title}:", *(f"  {k:<{width}}  {_value(values[k])}" for k in sorted(values))]


def detail(run: dict[str, Any]) -> str:
    reason = run.get("finish_reason") or "(unfinished)"
    exit_status = run.get("exit_status")
    failure = run.get("failure")
    lines = [
        f"run {run['id']}: {run['spider']}",
        f"  started      {when(run.get('started_at'))} UTC",
        f"  finished     {when(run.get('finished_at'))} UTC ({duration(run)})",
        f"  finish       {reason} (exit status {_count(exit_status)})",
        *([f"  failure      {mask_url_credentials(failure)}"] if failure else []),
        f"  profile      {run.get('profile') or '-'}",
        "  counts       "
        + ", ".join(
            f"{name} {_count(run.get(name))}"
            for name in ("pages", "items", "rejects", "duplicates", "errors")
        ),
    ]
    lines += _mapping("arguments", masked("", run.get("arguments")))
    lines += _mapping("settings", masked("", run.get("settings")))
    lines += _mapping("stats", Redactor(()).redact_values(run.get("stats")))
    return "\n".join(lines)


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings: ClassVar[dict[str, Any]] = {"LOG_ENABLED": False}

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        install_defaults(self.settings)  # what a crawl would read: SQLITE_PATH, EXPORT_*…

    def syntax(self) -> str:
        return "[ID] [--limit N] [--spider NAME] [--db PATH]"

    def short_desc(self) -> str:
        return "List recent crawl runs, or show one run in detail"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--limit", metavar="N", default="20", help="runs to list (20)")
        parser.add_argument("--spider", metavar="NAME", help="only runs of this spider")
        parser.add_argument("--db", metavar="PATH", help="the store (default: SQLITE_PATH)")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        try:
            self._run(args, opts)
        except RunsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            self.exitcode = exc.exit_status

    def _run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        if len(args) > 1:
            raise RunsError("give at most one run id: scrapy runs [ID]", EXIT_USAGE)
        run_id = _number(args[0], "run id", 1) if args else None
        limit = _number(opts.limit, "--limit", 1)
        db = str(opts.db or self.settings.get("SQLITE_PATH") or defaults.SQLITE_PATH)
        busy = self.settings.getfloat("SQLITE_BUSY_TIMEOUT", defaults.SQLITE_BUSY_TIMEOUT)
        try:
            with closing(open_readonly(db, busy)) as conn:
                if run_id is not None:
                    run = get_run(conn, run_id)
                    if run is None:
                        raise RunsError(f"no run {run_id} in {db} (see `scrapy runs`)")
                    print(detail(run))
                    return
                runs = list_runs(conn, limit, opts.spider)
        except StoreError as exc:
            raise RunsError(str(exc) if str(exc).startswith(db) else f"{db}: {exc}") from None
        self._print(runs, db, opts.spider)

    def _print(self, runs: list[dict[str, Any]], db: str, spider: str | None) -> None:
        if not runs:
            of = f" of spider {spider!r}" if spider else ""
            print(f"no runs{of} recorded in {db}", file=sys.stderr)
            return
        rows = [summary_row(run) for run in runs]
        if not (sys.stdout.isatty() and rich_table(rows)):
            print(plain_table(rows))


def _number(text: str, what: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise RunsError(f"{what} must be a whole number of at least {minimum}, not {text!r}", 2)
    return value
