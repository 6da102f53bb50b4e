"""``scrapy crawl`` with checked arguments and an exit status that tells whether the run failed.

Differences from Scrapy's own command:

* ``-a NAME=VALUE`` may be repeated: the values are joined (for ``-a url=… -a url=…``).
* Spider arguments and ``CRAWL_PROFILE`` are checked before the crawl starts; a bad one is a
  one-line ``error: …`` on stderr and exit status 2.
* The exit status is 1 when the run failed, where stock Scrapy exits 0: it could not start, or
  the health monitor's verdict (``crawler.stats.judge``: finish reason, error ratio, items
  against the previous run) says so. The runs row records the same verdict.
* ``-s FRONTIER=redis``: Redis (``REDIS_URL``) is pinged first; unreachable or refusing the
  password is a one-line error and exit status 2.
* ``-s WORKERS=N`` (N > 1 or ``auto``): this process supervises N crawl processes of one run
  (``crawler.workers``) instead of crawling itself.
* ``--status-file PATH`` (``-s PROGRESS_STATUS_FILE=PATH``): the live progress as JSON for
  dashboards (``crawler.extensions.progress``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy import signals
from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError
from scrapy.spiderloader import get_spider_loader

from crawler.addon import install_defaults
from crawler.arguments import join_repeated, refuse_config_arguments
from crawler.exceptions import ArgumentError
from crawler.exitcodes import EXIT_FAILED, usage_errors
from crawler.extensions.alerts import AlertConfig
from crawler.extensions.progress import add_status_file_option, status_file_setting
from crawler.frontier.jobs import ARGUMENTS_SETTING
from crawler.frontier.scheduler import FrontierConfig, frontier_mode, frontier_wanted
from crawler.itemtables import TableRules
from crawler.profiles import PROFILES
from crawler.quality.checks import QualityPolicy
from crawler.rendering.browser import check_browser
from crawler.safety.jobdir import UntrustedJobDir, check_jobdir
from crawler.stats import HealthPolicy, recorded_verdict
from crawler.workers import WorkersConfig, supervise, worker_arguments, workers_wanted

if TYPE_CHECKING:
    import argparse

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings


class Command(ScrapyCrawlCommand):
    # a crawl records its run (RunRecorder); other commands that crawl (fetch, shell…) do not
    default_settings: ClassVar[dict[str, Any]] = {
        **ScrapyCrawlCommand.default_settings,
        "RUN_RECORD": True,
    }

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        add_status_file_option(parser)

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        status_file_setting(opts)  # before the -s options are applied (and given to workers)
        given = list(opts.spargs or [])  # as typed: repeated for each worker
        opts.spargs = join_repeated(opts.spargs or [])
        super().process_options(args, opts)
        assert self.settings is not None
        install_defaults(self.settings)  # what the crawl will read, for the checks before it
        if len(args) != 1:
            raise UsageError("give exactly one spider name; `scrapy list` shows them")
        self.workers: WorkersConfig | None = None
        with usage_errors():  # before the crawler process starts and logs its banner
            self.arguments = self._check(args[0], opts.spargs)
            if count := workers_wanted(self.settings):
                command = worker_arguments("crawl", args[0], given, opts)
                self.workers = WorkersConfig.from_settings(
                    self.settings, count=count, spider=args[0], command=command
                )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.crawler_process is not None and self.settings is not None
        if self.workers is not None:
            with usage_errors():
                self.exitcode = supervise(self.workers, self.settings, self.arguments)
            return
        crawler = self._create_crawler(args[0])
        reasons: list[str] = []

        def closed(spider: Any, reason: str) -> None:
            reasons.append(reason)

        crawler.signals.connect(closed, signal=signals.spider_closed, weak=False)
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        self.exitcode = self._exit_status(crawler, reasons)

    def _check(self, spider_name: str, spargs: dict[str, Any]) -> dict[str, Any]:
        """Check the spider's arguments and the settings; the arguments as the spider parses
        them (``spider.arguments``; none for a spider without ``parse_arguments``)."""
        assert self.settings is not None
        profile = str(self.settings.get("CRAWL_PROFILE") or "polite").strip().lower()
        if profile not in PROFILES:
            raise ArgumentError(f"unknown CRAWL_PROFILE {profile!r}: choose {', '.join(PROFILES)}")
        try:
            HealthPolicy.from_settings(self.settings)
            QualityPolicy.from_settings(self.settings)
            AlertConfig.from_settings(self.settings)
        except ValueError as exc:
            raise ArgumentError(str(exc)) from None
        try:
            spidercls = get_spider_loader(self.settings).load(spider_name)
        except KeyError:
            raise ArgumentError(f"no spider named {spider_name!r} (see `scrapy list`)") from None
        try:
            TableRules.from_settings(self.settings, spidercls)  # ITEM_TABLES, ITEM_KEYS
        except ValueError as exc:
            raise ArgumentError(str(exc)) from None
        try:
            if frontier_wanted(self.settings):
                FrontierConfig.from_settings(self.settings)
                if frontier_mode(self.settings) == "redis":
                    check_redis(self.settings)
        except ValueError as exc:
            raise ArgumentError(str(exc)) from None
        parse = getattr(spidercls, "parse_arguments", None)
        if parse is None:  # a plain spider: Scrapy sets every -a as an attribute
            refuse_config_arguments(spargs)
            # what identifies its crawl for the frontier (crawler.frontier.jobs)
            self.settings.set(ARGUMENTS_SETTING, dict(spargs), priority="command")
        values = parse(spargs) if parse is not None else dict(spargs)
        settle = getattr(spidercls, "settle_arguments", None)
        if settle is not None:  # e.g. -a depth=2 against -s DEPTH_LIMIT=5
            settle(spargs, values, self.settings)
        render = values.get("render") if parse is not None else None
        check_browser(self.settings, render)  # rendering asked for: a browser?
        jobdir = self.settings.get("JOBDIR")
        if jobdir:
            try:
                check_jobdir(Path(jobdir))  # before Scrapy unpickles anything from it
            except (UntrustedJobDir, OSError) as exc:
                raise ArgumentError(str(exc)) from None
        return values

    def _exit_status(self, crawler: Crawler, reasons: list[str]) -> int:
        assert self.crawler_process is not None
        return exit_status(crawler, reasons, bootstrap_failed=self.crawler_process.bootstrap_failed)


def check_redis(settings: BaseSettings) -> None:
    """``FRONTIER=redis``: its settings, and Redis answers and lets us in (``ArgumentError``)."""
    from crawler.frontier.redisbackend import RedisConfig  # redis only when used
    from crawler.frontier.redisconn import RedisUnavailable, check

    try:
        RedisConfig.from_settings(settings)
        check(settings).close()
    except (ValueError, RedisUnavailable) as exc:
        raise ArgumentError(str(exc)) from None


def exit_status(crawler: Crawler, reasons: list[str], *, bootstrap_failed: bool) -> int:
    """The crawl's exit status: 1 when it could not start or never closed, else the verdict
    recorded by the health monitor (``crawler.stats.recorded_verdict``)."""
    if bootstrap_failed or not reasons or crawler.stats is None:
        return EXIT_FAILED
    return recorded_verdict(crawler.stats.get_stats(), reasons[0]).exit_status
