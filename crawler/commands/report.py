"""``scrapy report [RUN] [-o FILE.html] [--last N] [--spider NAME]``: a run as an HTML page.

One self-contained file (inline CSS and SVG charts, no script, nothing fetched when opened) with
the run's summary and verdict, throughput over time, status codes, latency, errors by kind and
host, rejects by reason, field coverage beside the previous runs', top hosts, HTTP vs browser and
links to the snapshots. ``--last N`` compares the last N runs of a spider instead (the latest
run's spider unless ``--spider``). RUN defaults to the latest run; FILE to
``REPORT_DIR/run-<id>.html`` (``REPORT_DIR/<spider>-last-<N>.html`` with ``--last``). The store
is opened read-only (never created or migrated) and only aggregates are read. The file is
written atomically and its path printed. Errors are one line starting ``error:``: exit status 2
for bad input (no store, no such run), 1 when the report cannot be read or written.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand

from crawler.addon import install_defaults
from crawler.extensions.reportwriter import report_config
from crawler.report import ReportError, build_history_report, build_run_report

if TYPE_CHECKING:
    import argparse


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings: ClassVar[dict[str, Any]] = {"LOG_ENABLED": False}

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        install_defaults(self.settings)  # what a crawl would read: SQLITE_PATH, REPORT_DIR…

    def syntax(self) -> str:
        return "[RUN] [-o FILE.html] [--last N] [--spider NAME] [--db PATH]"

    def short_desc(self) -> str:
        return "Write a run (or the last N runs of a spider) as a self-contained HTML report"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        add = parser.add_argument
        add(
            "-o", "--output", metavar="FILE", help="the HTML file (default: REPORT_DIR/run-ID.html)"
        )
        add("--last", metavar="N", help="compare the last N runs of a spider instead")
        add("--spider", metavar="NAME", help="with --last: the spider (default: the latest run's)")
        add("--db", metavar="PATH", help="the store (default: SQLITE_PATH)")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        try:
            path = self._run(args, opts)
        except ReportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            self.exitcode = exc.exit_status
            return
        print(path)

    def _run(self, args: list[str], opts: argparse.Namespace) -> str:
        assert self.settings is not None
        if len(args) > 1:
            raise ReportError("give at most one run id: scrapy report [RUN] [-o FILE.html]")
        config = report_config(self.settings)
        if opts.db:
            config = replace(config, db=str(opts.db))
        if opts.last is not None:
            if args:
                raise ReportError("give a run id or --last N, not both")
            last = _number(opts.last, "--last")
            return str(build_history_report(config, opts.spider, last, opts.output))
        if opts.spider:
            raise ReportError("--spider goes with --last N (a run id names its spider)")
        run_id = _number(args[0], "run id") if args else None
        return str(build_run_report(config, run_id, opts.output))


def _number(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ReportError(f"{what} must be a whole number of at least 1, not {text!r}")
    return value
