"""``scrapy runspider FILE`` with the exit status of ``scrapy crawl``: 1 when the run failed.

Stock Scrapy exits 0 unless the crawl could not start; a user's spider file run inside the project
gets the project's verdict instead (``crawler.stats.judge``, as recorded in the runs row).
``-s WORKERS=N`` (N > 1 or ``auto``) runs the file's spider in N processes, as ``scrapy crawl``
does (``crawler.workers``). ``--status-file PATH`` writes the live progress as JSON, as for
``scrapy crawl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy import signals
from scrapy.commands.runspider import Command as ScrapyRunSpiderCommand
from scrapy.commands.runspider import _import_file
from scrapy.exceptions import UsageError
from scrapy.utils.spider import iter_spider_classes

from crawler.addon import install_defaults
from crawler.arguments import refuse_config_arguments
from crawler.exceptions import ArgumentError
from crawler.exitcodes import EXIT_FAILED, usage_errors
from crawler.extensions.alerts import AlertConfig
from crawler.extensions.progress import add_status_file_option, status_file_setting
from crawler.frontier.jobs import ARGUMENTS_SETTING
from crawler.quality.checks import QualityPolicy
from crawler.stats import HealthPolicy, recorded_verdict
from crawler.workers import WorkersConfig, supervise, worker_arguments, workers_wanted

if TYPE_CHECKING:
    import argparse

    from scrapy import Spider
    from scrapy.crawler import Crawler


class Command(ScrapyRunSpiderCommand):
    # a crawl records its run (RunRecorder); other commands that crawl (fetch, shell…) do not
    default_settings: ClassVar[dict[str, Any]] = {
        **ScrapyRunSpiderCommand.default_settings,
        "RUN_RECORD": True,
    }

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        add_status_file_option(parser)

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        status_file_setting(opts)  # before the -s options are applied (and given to workers)
        given = list(opts.spargs or [])  # as typed: repeated for each worker
        super().process_options(args, opts)
        assert self.settings is not None
        self.workers = 0
        with (
            usage_errors()
        ):  # before the spider file is loaded: Scrapy sets every -a as an attribute
            refuse_config_arguments(opts.spargs)
            try:  # the verdict's settings, as scrapy crawl checks them: one line, exit 2
                HealthPolicy.from_settings(self.settings)
                QualityPolicy.from_settings(self.settings)
                AlertConfig.from_settings(self.settings)
            except ValueError as exc:
                raise ArgumentError(str(exc)) from None
            # what identifies its crawl for the frontier (crawler.frontier.jobs)
            self.settings.set(ARGUMENTS_SETTING, dict(opts.spargs), priority="command")
            if (count := workers_wanted(self.settings)) and len(args) == 1:
                install_defaults(self.settings)  # what the supervisor reads (FRONTIER…)
                self.workers = count
                self.worker_command = worker_arguments("runspider", args[0], given, opts)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        self._spider_crawler: Crawler | None = None
        self._reasons: list[str] = []
        if self.workers:
            self._supervise(args, opts)
            return
        super().run(args, opts)
        if self.exitcode == 0:
            self.exitcode = self._exit_status()

    def _supervise(self, args: list[str], opts: argparse.Namespace) -> None:
        """The spider of the file, run by ``self.workers`` processes (``crawler.workers``)."""
        assert self.settings is not None
        try:
            spidercls = list(iter_spider_classes(_import_file(Path(args[0])))).pop()
        except (ImportError, ValueError, OSError, IndexError) as exc:
            raise UsageError(f"no spider loaded from {args[0]}: {exc}") from None
        parse = getattr(spidercls, "parse_arguments", None)
        with usage_errors():
            arguments = parse(opts.spargs) if parse is not None else dict(opts.spargs)
            config = WorkersConfig.from_settings(
                self.settings, count=self.workers, spider=spidercls.name,
                command=self.worker_command,
            )  # fmt: skip
            self.exitcode = supervise(config, self.settings, arguments)

    def _create_crawler(self, spname_or_cls: Any) -> Crawler:
        crawler = super()._create_crawler(spname_or_cls)
        crawler.signals.connect(self._closed, signal=signals.spider_closed, weak=False)
        self._spider_crawler = crawler
        return crawler

    def _closed(self, spider: Spider, reason: str) -> None:
        self._reasons.append(reason)

    def _exit_status(self) -> int:
        crawler = self._spider_crawler
        if crawler is None or crawler.stats is None or not self._reasons:
            return EXIT_FAILED
        return recorded_verdict(crawler.stats.get_stats(), self._reasons[0]).exit_status
