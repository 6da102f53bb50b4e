"""``scrapy schedule FILE``: run crawls on a schedule, each as its own ``scrapy crawl`` process.

* without options: stay in the foreground and run each job when its cron expression or
  interval fires, until SIGTERM/SIGINT;
* ``--once``: run the jobs that are due now, wait for them, exit (for cron and systemd timers):
  exit status 1 when a run failed;
* ``--list``: print the jobs and when each runs next.

Settings: ``SCHEDULE_LOG_DIR`` (per-run logs, locks and state), ``SCHEDULE_STOP_TIMEOUT``. The
``-s`` settings given to this command (except ``LOG_*`` and ``SCHEDULE_*``) and ``SQLITE_PATH``
are passed to every crawl, then the file's own settings. An invalid file is one ``error:`` line
and exit status 2.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError
from scrapy.settings import SETTINGS_PRIORITIES
from scrapy.spiderloader import get_spider_loader
from scrapy.utils.log import configure_logging

from crawler.addon import install_defaults
from crawler.arguments import REPEAT_SEPARATOR
from crawler.exitcodes import EXIT_FAILED, EXIT_USAGE
from crawler.scheduling.daemon import ScheduleDaemon
from crawler.scheduling.due import next_run
from crawler.scheduling.job import JOB_SETTING
from crawler.scheduling.once import run_due
from crawler.scheduling.runner import JobRunner
from crawler.scheduling.schedulefile import ScheduleError, load_schedule
from crawler.scheduling.state import JobState

if TYPE_CHECKING:
    import argparse

    from crawler.scheduling.job import Job

logger = logging.getLogger(__name__)

_NOT_PASSED = ("LOG_", "SCHEDULE_")


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False  # the crawls run in their own processes

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        install_defaults(self.settings)  # what a crawl would read: SQLITE_PATH, EXPORT_*…

    def syntax(self) -> str:
        return "FILE [--once | --list]"

    def short_desc(self) -> str:
        return "Run crawls on a schedule (cron or interval) from a TOML file"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--once", action="store_true", help="run the jobs that are due now, then exit"
        )
        parser.add_argument(
            "--list", action="store_true", help="print the jobs and their next run times"
        )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        if len(args) != 1:
            raise UsageError("give one schedule file: scrapy schedule FILE [--once | --list]")
        if opts.once and opts.list:
            raise UsageError("--once and --list do not go together")
        configure_logging(self.settings)
        if self.settings.get("LOG_LEVEL") != "DEBUG":  # APScheduler logs every job it fires
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
        try:
            stop_timeout = self.settings.getfloat("SCHEDULE_STOP_TIMEOUT")
        except ValueError:
            raw = self.settings.get("SCHEDULE_STOP_TIMEOUT")
            raise UsageError(f"SCHEDULE_STOP_TIMEOUT must be a number, not {raw!r}") from None
        try:
            jobs = load_schedule(Path(args[0]), check=self._check)
        except ScheduleError as exc:
            print(f"error: {exc}", file=sys.stderr)
            self.exitcode = EXIT_USAGE
            return
        log_dir = Path(str(self.settings.get("SCHEDULE_LOG_DIR") or "data/logs"))
        runner = JobRunner(log_dir, self._crawl_settings(), max(stop_timeout, 0.0))
        try:
            self._run(jobs, runner, opts)
        except OSError as exc:  # e.g. a log directory that cannot be created or read
            print(f"error: {exc}", file=sys.stderr)
            self.exitcode = EXIT_FAILED

    def _run(self, jobs: list[Job], runner: JobRunner, opts: argparse.Namespace) -> None:
        if opts.list:
            self._print_list(jobs, runner)
        elif opts.once:
            outcomes = run_due(jobs, runner)
            failed = [o.job for o in outcomes if o.failed]
            refused = sum(o.status == "refused" for o in outcomes)
            names = f" ({', '.join(failed)})" if failed else ""
            logger.info(
                f"{len(outcomes)} run(s): {len(outcomes) - len(failed) - refused} ok,"
                f" {len(failed)} failed{names}, {refused} refused (previous run still running)"
            )
            self.exitcode = EXIT_FAILED if failed else 0
        else:
            ScheduleDaemon(jobs, runner).run()

    def _check(self, spider: str, arguments: dict[str, list[str]]) -> None:
        """LookupError for an unknown spider, ArgumentError (a ValueError) for bad arguments."""
        assert self.settings is not None
        try:
            spidercls = get_spider_loader(self.settings).load(spider)
        except KeyError:
            raise LookupError(f"no spider named {spider!r} (see `scrapy list`)") from None
        parse = getattr(spidercls, "parse_arguments", None)
        if parse is not None:
            parse({name: REPEAT_SEPARATOR.join(values) for name, values in arguments.items()})

    def _crawl_settings(self) -> dict[str, str]:
        """``-s`` settings of this command for every crawl, and the store's path."""
        assert self.settings is not None
        cmdline = SETTINGS_PRIORITIES["cmdline"]
        passed = {
            name: str(self.settings[name])
            for name in sorted(self.settings)
            if (self.settings.getpriority(name) or 0) >= cmdline
            and not name.startswith(_NOT_PASSED)
            and name != JOB_SETTING
        }
        return {"SQLITE_PATH": str(self.settings.get("SQLITE_PATH")), **passed}

    def _print_list(self, jobs: list[Job], runner: JobRunner) -> None:
        now = datetime.now(UTC)
        rows = [("job", "spider", "when", "next run")]
        for job in jobs:
            state = JobState(runner.log_dir / job.name).read()
            upcoming = next_run(job, state, now)
            shown = upcoming.astimezone(job.timezone) if upcoming else None
            rows.append(
                (job.name, job.spider, job.when, f"{shown:%Y-%m-%d %H:%M:%S %Z}" if shown else "-")
            )
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            print("  ".join([*cells, row[3]]))
