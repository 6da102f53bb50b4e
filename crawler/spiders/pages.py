"""``pages``: fetch a given list of URLs, one ``PageItem`` per input URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import scrapy

from crawler.arguments import Arg
from crawler.exceptions import ArgumentError, IncrementalSkip
from crawler.meta import SEED
from crawler.pageinfo import error_item, page_item
from crawler.safety.targets import seed_url
from crawler.seeds import readable_file, shard
from crawler.spiders.base import MIN_AGE_ARG, RENDER_ARG, BaseSpider

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scrapy.http import Response
    from twisted.python.failure import Failure

    from crawler.items import PageItem


class PagesSpider(BaseSpider):
    """Fetch every URL of ``-a urls=FILE`` (text, or CSV with a url column) and ``-a url=…``.

    Every input URL yields exactly one ``PageItem``: a page that fails (DNS, timeout, refused,
    HTTP 4xx/5xx, robots.txt) still yields a record with its error, so nothing disappears.
    Recrawls are incremental: a URL the server answers with 304 yields no new item, its stored
    row is marked seen by this run; ``-a min_age=6h`` skips URLs fetched less than 6 h ago.
    """

    name = "pages"
    arguments_spec: ClassVar[dict[str, Arg]] = {
        "url": Arg(seed_url, multiple="urls", help="URL(s) to fetch; repeat or comma-separate"),
        "urls": Arg(readable_file, help="file of URLs: one per line, or CSV with a 'url' column"),
        "min_age": MIN_AGE_ARG,
        "render": RENDER_ARG,
        "shard": Arg(shard, help="K/N: fetch only part K of N of the URLs (one process per part)"),
    }

    @classmethod
    def check_arguments(cls, values: dict[str, Any]) -> None:
        if not values["url"] and not values["urls"]:
            raise ArgumentError("pages needs -a url=URL or -a urls=FILE")

    async def start(self) -> AsyncIterator[Any]:
        arguments = self.arguments
        for seed in self.iter_seeds(arguments["url"], arguments["urls"], arguments["shard"]):
            yield self.seed_request(seed.url)

    def seed_request(self, url: str) -> scrapy.Request:
        """The request of one seed URL (``scrapy seed pages`` queues the same in Redis)."""
        # dont_filter: a seed that another seed redirects to must still get its own item
        return scrapy.Request(
            url,
            callback=self.parse,
            errback=self.on_error,
            cb_kwargs={"seed": url},
            # seed: the user named this target (PrivateTargetMiddleware)
            meta={SEED: True, **self.leaf_meta()},
            dont_filter=True,
        )

    def parse(self, response: Response, seed: str) -> PageItem:
        return page_item(response, seed)

    def on_error(self, failure: Failure) -> PageItem | None:
        if isinstance(failure.value, IncrementalSkip):
            return None  # 304 (stored row marked seen) or min_age: counted by the middleware
        self.count_fetch_error(failure)
        return error_item(failure, failure.request.cb_kwargs["seed"])  # type: ignore[attr-defined]
