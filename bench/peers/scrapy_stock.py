"""5. A stock Scrapy spider: ``scrapy runspider`` outside any project, Scrapy's default settings.

Defaults include 16 requests at a time (8 per host) and DEBUG logging of every page.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import scrapy

from bench.peers.extract import FIELDS, is_complete, report

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from scrapy.http import Response


class StockSpider(scrapy.Spider):
    name = "stock"
    urls = ""  # -a urls=FILE

    async def start(self) -> AsyncIterator[Any]:
        self.started, self.pages, self.complete = time.perf_counter(), 0, 0
        with Path(self.urls).open() as lines:
            for line in lines:
                yield scrapy.Request(line.strip())

    def parse(self, response: Response) -> Iterator[dict[str, str]]:
        item = {name: response.xpath(xpath).get("") for name, xpath in FIELDS.items()}
        self.pages += 1
        self.complete += is_complete(item)
        yield item

    def closed(self, reason: str) -> None:
        errors = self.crawler.stats.get_value("downloader/exception_count", 0)
        report(self.pages, self.complete, errors, time.perf_counter() - self.started)
