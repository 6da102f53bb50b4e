"""``FrontierStartMiddleware``: ``start()`` seeds a job once.

With the store's frontier (``crawler.frontier.scheduler``), a resumed crawl whose ``start()`` was
read to its end before does not read it again (its requests are in the frontier, done or not),
and a worker other than the first (``WORKERS``) never reads it: the first one seeds the job for
all. When ``start()`` has been read to its end, the frontier records the job as seeded. Without
the frontier this middleware passes ``start()`` through untouched.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from crawler.frontier.scheduler import FrontierScheduler

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class FrontierStartMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FrontierStartMiddleware:
        return cls(crawler)

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        engine = self.crawler.engine
        frontier = engine.scheduler if engine is not None else None
        # (isinstance() is duck-typed for schedulers: Scrapy's would pass it)
        if frontier is None or FrontierScheduler not in type(frontier).__mro__:
            async for item_or_request in start:
                yield item_or_request
            return
        assert isinstance(frontier, FrontierScheduler)
        if frontier.skip_start:
            why = (
                "another worker seeds the crawl" if frontier.config.worker else "it was read before"
            )
            logger.info(f"Frontier: start() is not read: {why}")
            return
        # read again (resumed before it was seeded): its requests may be rows of the job
        again = frontier.resumed
        async for item_or_request in start:
            if again:
                frontier.start_again(item_or_request)
            yield item_or_request
        frontier.start_finished()
