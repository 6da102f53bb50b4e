"""``pages``: fetch a given list of URLs, one ``PageItem`` per input URL."""

from __future__ import annotations

import contextlib
import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import scrapy

from crawler.arguments import Arg
from crawler.exceptions import ArgumentError, IncrementalSkip
from crawler.meta import SEED
from crawler.pageinfo import error_item, page_item
from crawler.safety.targets import seed_url
from crawler.seeds import readable_file, shard
from crawler.spiders.base import MIN_AGE_ARG, RENDER_ARG, BaseSpider
from crawler.stats import PROGRESS_TOTAL, PROGRESS_TOTAL_KNOWN

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scrapy.http import Response
    from twisted.python.failure import Failure

    from crawler.items import PageItem

CHUNK = 1 << 20  # bytes read at a time when counting a seed file's lines


def seed_lines_estimate(path: str) -> int:
    """The lines of a seed file, counted in bytes without decoding or parsing them (a million
    lines in a fraction of a second): a CSV file's header line is left out; blank lines,
    comments and bad URLs are counted, until ``start()`` has read the file and knows."""
    with Path(path).open("rb") as handle:
        first = handle.readline()
        newlines, last = first.count(b"\n"), first[-1:]
        while chunk := handle.read(CHUNK):
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    lines = newlines + (last not in (b"", b"\n"))  # a last line without its newline
    return max(0, lines - _csv_header(first, path))


def _csv_header(first: bytes, path: str) -> bool:
    """Whether the first line is a CSV header naming a url column (as ``crawler.seeds`` reads)."""
    text = first.decode("utf-8-sig", errors="replace")
    if not (path.lower().endswith(".csv") or "," in text):
        return False
    row = next(csv.reader([text]), [])
    return "url" in (name.strip().lower() for name in row)


class PagesSpider(BaseSpider):
    """Fetch every URL of ``-a urls=FILE`` (text, or CSV with a url column) and ``-a url=…``.

    Every input URL yields exactly one ``PageItem``: a page that fails (DNS, timeout, refused,
    HTTP 4xx/5xx, robots.txt) still yields a record with its error, so nothing disappears.
    Recrawls are incremental: a URL the server answers with 304 yields no new item, its stored
    row is marked seen by this run; ``-a min_age=6h`` skips URLs fetched less than 6 h ago.
    """

    name = "pages"
    follows_links = False  # one request per seed: a resumed frontier knows the whole crawl
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
        stats = self.crawler.stats
        # The progress total: the file's lines at once (start() is read lazily, as the crawl
        # needs requests: counting the seeds it yields would know the total only at the end),
        # then the exact number of seeds once start() is read to its end.
        estimate = len(arguments["url"] or [])
        if arguments["urls"]:
            with contextlib.suppress(OSError):  # iter_seeds says why it cannot read it
                estimate += seed_lines_estimate(arguments["urls"])
        if arguments["shard"] is not None:
            estimate = math.ceil(estimate / arguments["shard"].count)
        stats.set_value(PROGRESS_TOTAL, estimate)
        stats.set_value(PROGRESS_TOTAL_KNOWN, 1)  # a list of URLs: no link is followed
        seeds = 0
        for seed in self.iter_seeds(arguments["url"], arguments["urls"], arguments["shard"]):
            seeds += 1
            yield self.seed_request(seed.url)
        stats.set_value(PROGRESS_TOTAL, seeds)

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
