"""``scrapy seed SPIDER FILE [-a NAME=VALUE…] [-c CALLBACK]``: load a URL file into the shared
Redis frontier of the crawl ``scrapy crawl SPIDER -a … -s FRONTIER=redis`` works on.

The file is read as the ``pages`` spider reads ``-a urls=FILE`` (one URL per line or a CSV url
column; every bad line reported with its line number, counted and skipped); each good URL is
queued as the request the spider's start would make for it (its ``seed_request(url)``, e.g.
``pages``; else a request to ``parse``, or to the method ``-c`` names), once per fingerprint.
The job is then marked seeded, so the workers that join it skip their start() and end when the
queue is done: seed before starting them. One summary line; exit status 2 for bad input
(unreadable file, unknown spider, bad argument, Redis unreachable).
Settings: ``REDIS_URL``, ``REDIS_PARAMS``, ``REDIS_KEY_PREFIX`` (as the workers have them).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError
from scrapy.utils.misc import load_object

from crawler.addon import install_defaults
from crawler.arguments import add_spider_arguments_option, spider_arguments
from crawler.exceptions import ArgumentError
from crawler.exitcodes import EXIT_FAILED, EXIT_USAGE
from crawler.frontier.jobs import job_arguments
from crawler.frontier.redisconn import (
    CONNECTION_ERRORS,
    RedisKeys,
    RedisUnavailable,
    check,
    describe,
    redis_url,
)
from crawler.frontier.seeding import (
    RequestTemplate,
    Seeder,
    SeedError,
    check_fingerprinter,
    job_spider,
)
from crawler.seeds import readable_file

if TYPE_CHECKING:
    import argparse

    from crawler.seeds import BadSeed

MAX_REPORTED = 1_000  # bad lines printed one by one; the rest are only counted


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings: ClassVar[dict[str, Any]] = {"LOG_ENABLED": False}

    def syntax(self) -> str:
        return "SPIDER FILE [-a NAME=VALUE …] [-c CALLBACK]"

    def short_desc(self) -> str:
        return "Queue a URL file's URLs in the Redis frontier of a spider's crawl"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        add_spider_arguments_option(
            parser, "the spider's arguments, as the workers get them (they name the crawl)"
        )
        parser.add_argument(
            "-c", "--callback", default=None,
            help="the spider method that parses the seeded pages (default: the request of the"
            " spider's seed_request, else parse)",
        )  # fmt: skip

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        install_defaults(self.settings)  # REDIS_KEY_PREFIX, REDIS_URL as the crawl reads them
        opts.spargs = spider_arguments(opts.spargs)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 2:
            raise UsageError("give a spider and a URL file: scrapy seed SPIDER FILE")
        try:
            report = self._seed(args[0], args[1], opts)
        except (ArgumentError, SeedError, RedisUnavailable) as exc:
            print(f"error: {exc}", file=sys.stderr)
            self.exitcode = EXIT_USAGE
            return
        except CONNECTION_ERRORS as exc:
            print(f"error: {describe(exc, redis_url(self._settings()))}", file=sys.stderr)
            self.exitcode = EXIT_FAILED
            return
        print(report, file=sys.stderr)

    def _settings(self) -> Any:
        assert self.settings is not None
        return self.settings

    def _seed(self, name: str, path: str, opts: argparse.Namespace) -> str:
        settings = self._settings()
        try:
            path = readable_file(path)
        except ValueError as exc:
            raise ArgumentError(f"{path}: {exc}") from None
        spider = job_spider(settings, name, opts.spargs)
        check_fingerprinter(load_object(settings["REQUEST_FINGERPRINTER_CLASS"]))
        template = RequestTemplate.for_spider(spider, opts.callback)
        keys = RedisKeys.for_job(settings, spider.name, job_arguments(spider, settings))
        client = check(settings)
        try:
            report = Seeder(client, keys, template, on_bad=_Reporter()).seed(path)
        finally:
            client.close()
        return report.line()


class _Reporter:
    """Prints each bad line (its file:line, why), up to ``MAX_REPORTED`` of them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, bad: BadSeed) -> None:
        self.count += 1
        if self.count <= MAX_REPORTED:
            print(f"{bad.source}: skipped invalid URL {bad.text[:200]!r}: {bad.reason}",
                  file=sys.stderr)  # fmt: skip
        elif self.count == MAX_REPORTED + 1:
            print("… further invalid lines are only counted", file=sys.stderr)
