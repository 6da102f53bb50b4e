"""``scrapy ingest SPIDER [-a NAME=VALUE…]``: the items of a Redis crawl's workers into one store.

The crawl is the one ``scrapy crawl SPIDER -a … -s FRONTIER=redis -s REDIS_ITEMS=True`` workers
share (same spider, arguments, ``REDIS_URL`` and ``REDIS_KEY_PREFIX``). This process reads the
items its workers append to the job's Redis stream and writes them into ``SQLITE_PATH`` and one
CSV per table for this run (``CSV_*``), recorded as one run with a row per worker (``scrapy runs``)
that ``scrapy export`` reads as any other (``crawler.frontier.ingest``). It may start before,
with or after the workers, and ends when the crawl is finished and every item is stored (exit
0); Ctrl-C stops it cleanly (exit 130) and running it again goes on. A lost Redis is waited for
(back-off with jitter) up to ``REDIS_RETRY_SECONDS``. One summary line.
The run records the items' field coverage (``COVERAGE_*``) and samples (``SAMPLE_*``), and is
checked against the previous runs of the crawl (``QUALITY_*``, with ``HEALTH_ENABLED``): a breach
is an ``ERROR: run failed: quality: …`` line and exit 1 (finish reason ``quality_failed``).
Errors are one ``error:`` line: exit 2 when it cannot start, 1 when the store fails.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import NotConfigured, UsageError

from crawler import defaults
from crawler.addon import install_defaults
from crawler.arguments import add_spider_arguments_option, spider_arguments
from crawler.exceptions import ArgumentError
from crawler.exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from crawler.extensions.runrecorder import command_line_settings
from crawler.extensions.sampler import SamplerConfig
from crawler.frontier.ingest import FINISHED, SHUTDOWN, IngestConfig, Ingester, IngestError
from crawler.frontier.jobs import job_arguments
from crawler.frontier.redisconn import (
    CONNECTION_ERRORS,
    RedisKeys,
    RedisUnavailable,
    check,
    describe,
    redis_url,
)
from crawler.frontier.runcsv import RunCsv
from crawler.frontier.seeding import job_spider
from crawler.pipelines.csv_file import CsvConfig, CsvConfigError
from crawler.quality.checks import QualityPolicy
from crawler.safety.secrets import Redactor, arguments_secrets, settings_secrets
from crawler.storage import Store, StoreConfig, StoreError

if TYPE_CHECKING:
    import argparse
    from types import FrameType

    from scrapy.settings import BaseSettings

    from crawler.frontier.ingest import IngestResult


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings: ClassVar[dict[str, Any]] = {"LOG_ENABLED": False}

    def syntax(self) -> str:
        return "SPIDER [-a NAME=VALUE …]"

    def short_desc(self) -> str:
        return "Store the items of a Redis crawl's workers in one SQLite store and CSV"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        add_spider_arguments_option(
            parser, "the spider's arguments, as the workers got them (they name the crawl)"
        )

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        install_defaults(self.settings)
        opts.spargs = spider_arguments(opts.spargs)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError("give the spider of the crawl: scrapy ingest SPIDER [-a …]")
        assert self.settings is not None
        stop: list[int] = []

        def ask_stop(signum: int, frame: FrameType | None) -> None:
            if stop:  # a second Ctrl-C: stop now (entries not acknowledged are read again)
                raise KeyboardInterrupt
            stop.append(signum)
            print("stopping after the batch in hand (Ctrl-C again to stop now)", file=sys.stderr)

        previous = {s: signal.signal(s, ask_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        handler = _log_to_stderr()
        try:
            result = self._ingest(args[0], opts.spargs, self.settings, lambda: bool(stop))
        except (ArgumentError, IngestError, RedisUnavailable, CsvConfigError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            self.exitcode = EXIT_USAGE
            return
        except StoreError as exc:
            print(f"error: SQLite store: {exc}", file=sys.stderr)
            self.exitcode = EXIT_FAILED
            return
        except CONNECTION_ERRORS as exc:
            print(f"error: {describe(exc, redis_url(self.settings))}", file=sys.stderr)
            self.exitcode = EXIT_FAILED
            return
        except KeyboardInterrupt:
            print("error: interrupted; what was not committed is read again next time",
                  file=sys.stderr)  # fmt: skip
            self.exitcode = EXIT_INTERRUPTED
            return
        finally:
            logging.getLogger("crawler").removeHandler(handler)
            for sig, before in previous.items():
                signal.signal(sig, before)
        counts = result.counts
        print(
            f"ingested run {result.run_id} ({result.reason}): {counts.items:,} items,"
            f" {counts.rejects:,} rejects, {counts.unplaced:,} unplaced, {counts.bad:,} bad"
            f" entries, {counts.claimed:,} taken over",
            file=sys.stderr,
        )
        for path in result.csv_paths:
            print(f"CSV: {path}", file=sys.stderr)
        if result.reason == FINISHED:
            self.exitcode = 0
        else:
            self.exitcode = EXIT_INTERRUPTED if result.reason == SHUTDOWN else EXIT_FAILED

    def _ingest(
        self, name: str, spargs: dict[str, Any], settings: BaseSettings, stopping: Any
    ) -> IngestResult:
        spider = job_spider(settings, name, spargs)
        arguments = job_arguments(spider, settings)
        keys = RedisKeys.for_job(settings, spider.name, arguments)
        quality = _quality_config(settings)  # before anything is opened: a bad setting stops it
        try:
            store = Store(StoreConfig.from_settings(settings))
        except NotConfigured:
            off = "scrapy ingest writes the SQLite store: SQLITE_ENABLED is off"
            raise ArgumentError(off) from None
        except ValueError as exc:
            raise ArgumentError(str(exc)) from None
        csv = _run_csv(settings, spider.name)
        client = check(settings)
        redactor = Redactor(settings_secrets(settings) | arguments_secrets(dict(arguments)))
        config = IngestConfig(
            **quality,
            heartbeat_seconds=settings.getfloat(
                "RUN_HEARTBEAT_SECONDS", defaults.RUN_HEARTBEAT_SECONDS
            ),
            stale_seconds=settings.getfloat("RUN_STALE_SECONDS", defaults.RUN_STALE_SECONDS),
            retry_seconds=settings.getfloat("REDIS_RETRY_SECONDS", defaults.REDIS_RETRY_SECONDS),
        )
        recorded = redactor.mask("", dict(arguments))  # as the run row records them
        try:
            store.open()
            ingester = Ingester(
                client, keys, store, csv, config, spider=spider.name, arguments=recorded
            )

            def start_run() -> int:
                return store.start_run(
                    spider.name,
                    arguments=recorded,
                    profile=None,
                    settings=command_line_settings(settings, redactor),
                )

            return ingester.run(start_run, stopping)
        except BaseException:
            if csv is not None:
                csv.discard()
            raise
        finally:
            store.close()
            client.close()


def _quality_config(settings: BaseSettings) -> dict[str, Any]:
    """The coverage, samples and checks settings of the run (as a crawl reads them);
    ``ArgumentError`` for a bad one."""
    found: dict[str, Any] = {"coverage_max_fields": None, "sample_interval": None}
    if settings.getbool("COVERAGE_ENABLED", defaults.COVERAGE_ENABLED):
        cap = settings.getint("COVERAGE_MAX_FIELDS", defaults.COVERAGE_MAX_FIELDS)
        if cap < 1:
            raise ArgumentError(f"COVERAGE_MAX_FIELDS must be at least 1, not {cap}")
        found["coverage_max_fields"] = cap
    if settings.getbool("SAMPLE_ENABLED", defaults.SAMPLE_ENABLED):
        found["sample_interval"] = SamplerConfig.from_settings(settings).interval
    if settings.getbool("HEALTH_ENABLED", defaults.HEALTH_ENABLED):
        try:
            found["quality"] = QualityPolicy.from_settings(settings)
        except ValueError as exc:
            raise ArgumentError(str(exc)) from None
    return found


def _run_csv(settings: BaseSettings, spider: str) -> RunCsv | None:
    try:
        config = CsvConfig.from_settings(settings)
    except NotConfigured:
        return None
    csv = RunCsv(config, spider)
    try:
        csv.open()
    except OSError as exc:
        raise ArgumentError(f"cannot write to {config.export_dir}: {exc.strerror or exc}") from None
    return csv


def _log_to_stderr() -> logging.Handler:
    """The ingester's INFO and WARNING lines (taken over entries, skipped ones, CSV files)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("crawler")
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler
