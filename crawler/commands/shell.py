"""``scrapy shell [URL]``: the URL given, and every URL passed to ``fetch()`` in the shell, is a
target the user named, as a spider's seed is: it may be a private or loopback address.

Links followed from it, and redirects, are checked as in a crawl (``PrivateTargetMiddleware``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy.commands.shell import Command as ScrapyShellCommand
from scrapy.http import Request
from scrapy.shell import Shell
from scrapy.utils.datatypes import SequenceExclude
from scrapy.utils.spider import DefaultSpider, spidercls_for_request
from scrapy.utils.url import guess_scheme
from w3lib.url import any_to_uri

from crawler.meta import SEED

if TYPE_CHECKING:
    import argparse

    from scrapy import Spider


class NamedTargetShell(Shell):
    """A ``Shell`` whose ``fetch(url)`` marks the URL as named by the user (``meta["seed"]``)."""

    def fetch(
        self,
        request_or_url: Request | str,
        spider: Spider | None = None,
        redirect: bool = True,
        **kwargs: Any,
    ) -> None:
        if isinstance(request_or_url, Request):
            super().fetch(request_or_url, spider)
            return
        meta = {**kwargs.pop("meta", {}), SEED: True}
        if redirect:  # as Scrapy's shell: redirects are followed, every other status shown
            meta["handle_httpstatus_list"] = SequenceExclude(range(300, 400))
        else:
            meta["handle_httpstatus_all"] = True
        request = Request(any_to_uri(request_or_url), dont_filter=True, meta=meta, **kwargs)
        super().fetch(request, spider)


class Command(ScrapyShellCommand):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        # Scrapy's own run, with NamedTargetShell for Shell
        url = guess_scheme(args[0]) if args else None
        assert self.crawler_process
        spider_loader = self.crawler_process.spider_loader
        spidercls: type[Spider] = DefaultSpider
        if opts.spider:
            spidercls = spider_loader.load(opts.spider)
        elif url:
            spidercls = spidercls_for_request(
                spider_loader, Request(url), spidercls, log_multiple=True
            )
        crawler = self.crawler_process._create_crawler(spidercls)
        crawler._apply_settings()
        loop = None
        if crawler.settings.getbool("TWISTED_REACTOR_ENABLED"):
            self._init_with_reactor(crawler)
        else:
            self._init_without_reactor(crawler)
            loop = self._get_reactorless_loop()
        shell = NamedTargetShell(crawler, update_vars=self.update_vars, code=opts.code, loop=loop)
        shell.start(url=url, redirect=not opts.no_redirect)
