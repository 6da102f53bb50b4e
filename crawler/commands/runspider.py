"""``scrapy runspider FILE`` with the exit status of ``scrapy crawl``: 1 when the run failed.

Stock Scrapy exits 0 unless the crawl could not start; a user's spider file run inside the project
gets the project's verdict instead (``crawler.stats.judge``, as recorded in the runs row).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from scrapy import signals
from scrapy.commands.runspider import Command as ScrapyRunSpiderCommand

from crawler.arguments import refuse_config_arguments
from crawler.exitcodes import EXIT_FAILED, usage_errors
from crawler.stats import recorded_verdict

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

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        with (
            usage_errors()
        ):  # before the spider file is loaded: Scrapy sets every -a as an attribute
            refuse_config_arguments(opts.spargs)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        self._spider_crawler: Crawler | None = None
        self._reasons: list[str] = []
        super().run(args, opts)
        if self.exitcode == 0:
            self.exitcode = self._exit_status()

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
