"""``scrapy parse URL`` with the spider's arguments checked first.

``-a NAME=VALUE`` as for ``scrapy crawl`` (repeats joined). A spider whose arguments are
missing or bad (``scrapy parse URL --spider products`` without ``-a start_url=…``) is a one-line
``error: …`` and exit status 2, where stock Scrapy prints a traceback. The URL itself is a start
request: a target the user named (``PrivateTargetMiddleware``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.commands.parse import Command as ScrapyParseCommand
from scrapy.http import Request
from scrapy.spiderloader import get_spider_loader
from scrapy.utils.spider import spidercls_for_request

from crawler.arguments import join_repeated
from crawler.exceptions import ArgumentError
from crawler.exitcodes import usage_errors

if TYPE_CHECKING:
    import argparse

    from scrapy import Spider


class Command(ScrapyParseCommand):
    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        opts.spargs = join_repeated(opts.spargs or [])
        super().process_options(args, opts)
        if len(args) != 1:
            return  # Scrapy's run reports the usage error
        with usage_errors():  # before the crawler process starts and logs its banner
            self._check_arguments(args[0], opts)

    def _check_arguments(self, url: str, opts: argparse.Namespace) -> None:
        assert self.settings is not None
        loader = get_spider_loader(self.settings)
        spidercls: type[Spider] | None
        if opts.spider:
            try:
                spidercls = loader.load(opts.spider)
            except KeyError:
                raise ArgumentError(
                    f"no spider named {opts.spider!r} (see `scrapy list`)"
                ) from None
        else:
            spidercls = spidercls_for_request(loader, Request(url))
        parse = getattr(spidercls, "parse_arguments", None)
        if parse is not None:
            parse(opts.spargs)
