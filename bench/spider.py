"""The bench's spider for our crawler: the ``pages`` spider, extracting the four bench fields.

Run as ``scrapy crawl bench -s SPIDER_MODULES=bench.spider -a urls=FILE -s CRAWL_PROFILE=fast``:
project settings, profiles and the full pipeline (clean, validate, dedupe, SQLite, CSV) apply.
``-a seeding=eager`` pushes every seed into the scheduler before the first download (the memory
measurement of a full frontier); the default, ``lazy``, is how ``pages`` reads its file.
"""

from __future__ import annotations

import json
import resource
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal  # noqa: TC003 (a runtime type hint of the item)
from typing import TYPE_CHECKING, Any, ClassVar

from bench.peers.extract import FIELDS
from crawler.arguments import Arg
from crawler.items import REQUIRED
from crawler.spiders.pages import PagesSpider
from crawler.stats import FETCH_ERRORS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scrapy.http import Response

SEEDING = ("lazy", "eager")


@dataclass
class BenchProduct:
    """The four fields every contestant extracts; a page lacking one is rejected with why."""

    table: ClassVar[str] = "bench_products"
    key: ClassVar[tuple[str, ...]] = ("url",)

    url: str | None = field(default=None, metadata=REQUIRED)
    title: str | None = field(default=None, metadata=REQUIRED)
    h1: str | None = field(default=None, metadata=REQUIRED)
    price: Decimal | None = field(default=None, metadata=REQUIRED)
    description: str | None = field(default=None, metadata=REQUIRED)


def seeding(text: str) -> str:
    if text not in SEEDING:
        raise ValueError(f"must be one of {', '.join(SEEDING)}")
    return text


class BenchSpider(PagesSpider):
    name = "bench"
    arguments_spec: ClassVar[dict[str, Arg]] = {
        **PagesSpider.arguments_spec,
        "seeding": Arg(seeding, default="lazy", help="lazy (as pages) or eager (all at once)"),
    }

    async def start(self) -> AsyncIterator[Any]:
        if self.arguments["seeding"] == "lazy":
            async for request in super().start():
                yield request
            return
        engine = self.crawler.engine
        async for request in super().start():
            engine.crawl(request)  # straight into the scheduler: the whole frontier at once
        scheduler = engine.scheduler
        queued = len(scheduler) if scheduler is not None else 0  # type: ignore[arg-type]
        self.crawler.stats.set_value("bench/frontier", queued)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.crawler.stats.set_value("bench/seeded_peak_rss_mib", peak_kib / 1024)

    def closed(self, reason: str) -> None:
        """The bench's result line; ``bench.contestants`` checks it against the store."""
        stats = self.crawler.stats.get_stats()
        pages = stats.get("response_received_count", 0) - stats.get("robotstxt/response_count", 0)
        line = {
            "pages": pages,
            "items": stats.get("item_scraped_count", 0),
            "errors": stats.get(FETCH_ERRORS, 0),
            "elapsed": (datetime.now(UTC) - stats["start_time"]).total_seconds(),
            "frontier": stats.get("bench/frontier"),
            "seeded_peak_rss_mib": stats.get("bench/seeded_peak_rss_mib"),
        }
        print(json.dumps(line), flush=True)

    def parse(self, response: Response, seed: str) -> BenchProduct:  # type: ignore[override]
        # raw strings: the clean pipeline turns the price into a Decimal
        values: dict[str, Any] = {n: response.xpath(x).get() for n, x in FIELDS.items()}
        return BenchProduct(url=seed, **values)
