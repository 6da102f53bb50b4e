"""``scrapy runs [ID]``: the crawl history recorded in the store.

Without an ID: the latest runs (a table on a terminal, aligned plain text otherwise). With an ID:
one run in detail, with its arguments, settings and sorted stats, shown through the secret
policy (``crawler.safety.secrets``) again: a row recorded in clear (by an older version or by
hand) prints ``***`` for its secrets too. The store is opened read-only,
so this never creates or changes a database. Errors are one line starting ``error:``: exit
status 2 for bad input, 1 for a missing store or an unknown run.

A run whose processes are gone shows ``killed`` (marked so by the next crawl, or seen here
already: see ``crawler.storage.liveness`` and ``RUN_STALE_SECONDS``). The latest run of a
frontier job that is still open with requests queued or leased shows ``(resumable)``: the same
command resumes it. One run in detail lists its worker processes and its job's request counts,
its field coverage per item table (``field_coverage``, with the previous runs' median where a
check compared them) and the results of the checks across runs (``runs.checks``).
"""

from __future__ import annotations

import sys
from contextlib import closing
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand

from crawler import defaults
from crawler.addon import install_defaults
from crawler.durations import duration, when
from crawler.exitcodes import EXIT_FAILED, EXIT_USAGE
from crawler.safety.secrets import Redactor, mask_url_credentials, masked
from crawler.stats import COVERAGE, COVERAGE_OTHER, QUALITY_CHECKS
from crawler.storage.liveness import KILLED
from crawler.storage.quality import run_checks_of, run_coverage
from crawler.storage.reads import (
    dead_runs,
    get_run,
    job_summary,
    list_runs,
    open_readonly,
    resumable_runs,
    worker_states,
)
from crawler.storage.schema import to_json
from crawler.storage.store import StoreError

if TYPE_CHECKING:
    import argparse
    import sqlite3

HEADERS = (
    *("id", "spider", "started (UTC)", "duration", "finish reason"),
    *("pages", "items", "rejects", "errors", "exit"),
)
NUMERIC = frozenset({"id", "pages", "items", "rejects", "errors", "exit"})
WORKER_HEADERS = ("worker", "state", "host", "pid", "started", "last seen", "pages", "items")


class RunsError(Exception):
    def __init__(self, message: str, exit_status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def reason_label(run: dict[str, Any]) -> str:
    """The finish reason; ``killed`` for a run whose processes are gone (``gone``, set by
    ``annotate``), and `` (resumable)`` after the latest run of an unfinished frontier job."""
    reason = run.get("finish_reason") or (KILLED if run.get("gone") else "(unfinished)")
    return f"{reason} (resumable)" if run.get("resumable") else reason


def annotate(
    conn: sqlite3.Connection, runs: list[dict[str, Any]], stale_seconds: float
) -> list[dict[str, Any]]:
    """Mark the runs whose processes are gone (``gone``: last seen) and the resumable ones."""
    dead = dead_runs(conn, stale_seconds) if any(r.get("finished_at") is None for r in runs) else {}
    resumable = resumable_runs(conn, [int(r["id"]) for r in runs])
    for run in runs:
        if run["id"] in dead:
            run["gone"] = dead[run["id"]] or run.get("started_at") or "-"
        finished = run.get("finished_at") is not None or "gone" in run
        run["resumable"] = finished and run["id"] in resumable
    return runs


def summary_row(run: dict[str, Any]) -> tuple[str, ...]:
    reason = reason_label(run)
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


def detail(
    run: dict[str, Any],
    workers: list[dict[str, Any]] | None = None,
    job: dict[str, Any] | None = None,
    coverage: dict[str, dict[str, Any]] | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> str:
    reason = reason_label(run)
    exit_status = run.get("exit_status")
    failure = run.get("failure")
    if run.get("gone") and not failure:
        failure = f"process gone (last seen {when(run['gone'])} UTC; not marked yet)"
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
        *([_job_line(job)] if job else []),
    ]
    lines += _workers(workers or [])
    lines += _coverage(coverage or {}, checks or [])
    lines += _checks(checks or [])
    lines += _mapping("arguments", masked("", run.get("arguments")))
    lines += _mapping("settings", masked("", run.get("settings")))
    stats = run.get("stats")
    if isinstance(stats, dict) and (coverage or checks):  # shown above, not again as JSON
        stats = {k: v for k, v in stats.items() if k not in (COVERAGE, QUALITY_CHECKS)}
    lines += _mapping("stats", Redactor(()).redact_values(stats))
    return "\n".join(lines)


def _job_line(job: dict[str, Any]) -> str:
    counts = ", ".join(f"{job[name]:,} {name}" for name in ("queued", "leased", "done", "failed"))
    return f"  job          {job['id']} ({job['state']}): {counts}"


def _workers(workers: list[dict[str, Any]]) -> list[str]:
    """The processes of the run, one aligned line each, under ``workers:``."""
    if not workers:
        return []
    rows = [
        (
            str(w["worker"]), str(w["state"]), str(w["host"]), str(w["pid"]),
            when(w.get("started_at")), when(w.get("heartbeat_at")),
            _count(w.get("pages")), _count(w.get("items")),
        )
        for w in workers
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in (WORKER_HEADERS, *rows)) for i in range(len(WORKER_HEADERS))]
    return ["workers:"] + [
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (WORKER_HEADERS, *rows)
    ]


def _coverage(coverage: dict[str, dict[str, Any]], checks: list[dict[str, Any]]) -> list[str]:
    """Per item table, the share of items with each field filled, with the previous runs'
    median beside it when a check compared them (``runs.checks``)."""
    if not coverage:
        return []
    medians = {
        str(c.get("subject")): c
        for c in checks
        if c.get("check") == "coverage" and c.get("baseline") is not None
    }
    lines = ["field coverage:"]
    for table, figures in sorted(coverage.items()):
        items = int(figures.get("items") or 0)
        fields = figures.get("fields") or {}
        lines.append(f"  {table} ({items:,} items)")
        width = max(len(str(name)) for name in fields) if fields else 0
        for name, filled in fields.items():
            if name == COVERAGE_OTHER:
                lines.append(f"    {name:<{width}}  {int(filled):,} values")
                continue
            share = f"{int(filled) / items:>4.0%}" if items else "   -"
            found = medians.get(f"{table}.{name}")
            beside = (
                f"  (median {found['baseline']:.0%} of {found['runs']} previous"
                f" {'run' if found['runs'] == 1 else 'runs'})"
                if found
                else ""
            )
            lines.append(f"    {name:<{width}}  {share}{beside}")
    return lines


def _checks(checks: list[dict[str, Any]]) -> list[str]:
    """The checks across runs, one line each, failed ones first; the coverage checks that
    passed are in the coverage lines above."""
    if not checks:
        return []
    failed = [c for c in checks if not c.get("passed")]
    lines = [f"checks: {len(checks) - len(failed)} passed, {len(failed)} failed"]
    shown = [c for c in checks if not c.get("passed") or c.get("check") != "coverage"]
    for check in sorted(shown, key=lambda c: bool(c.get("passed"))):
        state = "passed" if check.get("passed") else "FAILED"
        lines.append(f"  {state}  {check.get('check', '-'):<8}  {check.get('message', '')}")
    return lines


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
        stale = self.settings.getfloat("RUN_STALE_SECONDS", defaults.RUN_STALE_SECONDS)
        try:
            with closing(open_readonly(db, busy)) as conn:
                if run_id is not None:
                    run = get_run(conn, run_id)
                    if run is None:
                        raise RunsError(f"no run {run_id} in {db} (see `scrapy runs`)")
                    annotate(conn, [run], stale)
                    job = job_summary(conn, run["job_id"]) if run.get("job_id") else None
                    coverage = run_coverage(conn, [run_id]).get(run_id)
                    checks = run_checks_of(conn, run_id)
                    workers = worker_states(conn, run_id, stale)
                    print(detail(run, workers, job, coverage, checks))
                    return
                runs = annotate(conn, list_runs(conn, limit, opts.spider), stale)
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
