"""``site``: start from one or more URLs and follow links inside the allowed hosts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.http import TextResponse
from scrapy.linkextractors import LinkExtractor
from scrapy.settings import SETTINGS_PRIORITIES
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.sitemap import Sitemap, sitemap_urls_from_robots

from crawler.arguments import Arg, boolean, non_negative_int, positive_int, regex
from crawler.exceptions import ArgumentError, IncrementalSkip
from crawler.meta import SEED
from crawler.pageinfo import error_item, page_item
from crawler.safety.targets import seed_url
from crawler.spiders.base import MIN_AGE_ARG, RENDER_ARG, BaseSpider
from crawler.stats import FRONTIER_RESUMED, PROGRESS_ENDED, PROGRESS_TOTAL, PROGRESS_TOTAL_KNOWN

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping

    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure


class SiteSpider(BaseSpider):
    """Crawl a site: follow links from ``start_url`` within its hosts, one ``PageItem`` per page.

    Links are filtered by ``allow``/``deny`` regular expressions (repeat ``-a`` for several),
    bounded by ``depth`` (link hops from a start URL) and ``max_pages`` (requests scheduled).
    Scrapy's own ``DEPTH_LIMIT`` and ``CLOSESPIDER_PAGECOUNT``, when the user sets them, keep
    their meaning (0: no limit) and replace the defaults of ``depth`` and ``max_pages``; given
    with the argument and disagreeing, the crawl is refused (``settle_arguments``).
    robots.txt is obeyed (``ROBOTSTXT_OBEY``); ``sitemap=true`` also seeds from the sitemaps
    that robots.txt lists, or ``/sitemap.xml``. Pages at the ``depth`` limit (their links are
    not followed) are revalidated on a recrawl and skipped by ``min_age``; the others are always
    fetched in full, so new pages are still found.
    """

    name = "site"
    arguments_spec: ClassVar[dict[str, Arg]] = {
        "start_url": Arg(
            seed_url, multiple="urls", required=True, help="where to start; repeatable"
        ),
        "allow": Arg(regex, multiple="lines", help="only follow URLs matching (repeatable)"),
        "deny": Arg(regex, multiple="lines", help="never follow URLs matching (repeatable)"),
        "depth": Arg(non_negative_int, default=3, help="link hops from a start URL"),
        "max_pages": Arg(positive_int, default=1000, help="stop scheduling after this many"),
        "sitemap": Arg(boolean, default=False, help="also seed from the site's sitemaps"),
        "min_age": MIN_AGE_ARG,
        "render": RENDER_ARG,
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        starts: list[str] = self.arguments["start_url"]
        # Offsite filtering (Scrapy's OffsiteMiddleware) keeps the crawl on these hosts.
        self.allowed_domains = sorted({urlsplit(u).hostname or "" for u in starts})
        self.links = LinkExtractor(
            allow=self.arguments["allow"] or (),
            deny=self.arguments["deny"] or (),
            unique=True,
        )
        self.seen: set[str] = set()
        # the progress total (sitemap=true): every request of the crawl, known once the
        # sitemaps are read; links to pages they do not list still add to it
        self.counting = False
        self.sitemaps: set[str] = set()  # robots.txt and sitemap URLs asked for
        self.sitemaps_pending = 0  # of those, not answered yet
        self.start_read = False

    @classmethod
    def check_arguments(cls, values: dict[str, Any]) -> None:
        if not values["start_url"]:
            raise ArgumentError("site needs -a start_url=URL")

    @classmethod
    def settle_arguments(
        cls, raw: Mapping[str, Any], values: dict[str, Any], settings: BaseSettings
    ) -> None:
        """A user-set ``DEPTH_LIMIT`` / ``CLOSESPIDER_PAGECOUNT`` replaces the default of
        ``depth`` / ``max_pages`` (0: no limit, None here); with the argument too, they must
        agree. Set in ``values``, so the runs row records the limits the crawl used."""
        for arg, setting in (("depth", "DEPTH_LIMIT"), ("max_pages", "CLOSESPIDER_PAGECOUNT")):
            if (settings.getpriority(setting) or 0) <= SETTINGS_PRIORITIES["default"]:
                continue  # Scrapy's default (0): the spider's own limit applies
            limit = settings.getint(setting) or None
            if arg not in raw:
                values[arg] = limit
            elif values[arg] != limit:
                raise ArgumentError(
                    f"-a {arg}={values[arg]} and {setting}={settings.getint(setting)} disagree:"
                    f" set one of them ({setting}=0: no limit)"
                )

    async def start(self) -> AsyncIterator[Any]:
        stats = self.crawler.stats
        # a resumed crawl's frontier holds requests of its own: no total to count from here
        self.counting = self.arguments["sitemap"] and not stats.get_value(FRONTIER_RESUMED)
        for seed in self.iter_seeds(self.arguments["start_url"], None):
            request = self._request(seed.url, depth=0, seed=True)
            if request is not None:
                yield request
            if self.arguments["sitemap"]:
                root = f"{urlsplit(seed.url).scheme}://{urlsplit(seed.url).netloc}"
                if robots := self._sitemap_request(f"{root}/robots.txt", self.parse_robots):
                    yield robots
        self.start_read = True
        self._sitemap_done(0)

    def _request(self, url: str, depth: int, seed: bool = False) -> scrapy.Request | None:
        """A request for a page not seen yet, or None (seen, or the page budget is spent)."""
        if url in self.seen or not self._on_site(url):
            return None
        budget = self.arguments["max_pages"]
        if budget is not None and len(self.seen) >= budget:
            self.crawler.stats.inc_value("site/max_pages_skipped")
            return None
        self.seen.add(url)
        if self.counting:
            self.crawler.stats.inc_value(PROGRESS_TOTAL)
        # a page whose links are not followed may be revalidated or skipped (min_age)
        meta = self.leaf_meta() if self._at_depth_limit(depth) else {}
        if seed:
            meta[SEED] = True  # named by the user (PrivateTargetMiddleware)
        return scrapy.Request(
            url,
            callback=self.parse,
            errback=self.on_error,
            cb_kwargs={"hops": depth},
            meta=meta,
        )

    def _at_depth_limit(self, hops: int) -> bool:
        limit = self.arguments["depth"]
        return limit is not None and hops >= limit

    def _on_site(self, url: str) -> bool:
        host = (urlsplit(url).hostname or "").lower()
        return any(host == d or host.endswith(f".{d}") for d in self.allowed_domains)

    def parse(self, response: Response, hops: int) -> Iterator[Any]:
        yield page_item(response, response.meta.get("redirect_urls", [response.url])[0])
        if self._at_depth_limit(hops) or not isinstance(response, TextResponse):
            return
        for link in self.links.extract_links(response):
            request = self._request(link.url, hops + 1)
            if request is not None:
                yield request

    def _sitemap_request(self, url: str, callback: Any) -> scrapy.Request | None:
        """A robots.txt or sitemap request, awaited before the progress total is known; None
        for one asked for already. Never filtered as a page seen (its answer is awaited), and
        never fetched as a page after."""
        if url in self.sitemaps:
            return None
        self.sitemaps.add(url)
        self.seen.add(url)
        self.sitemaps_pending += 1
        if self.counting:
            self.crawler.stats.inc_value(PROGRESS_TOTAL)
        return scrapy.Request(url, callback=callback, errback=self.on_error_quiet, dont_filter=True)

    def _sitemap_done(self, answered: int = 1) -> None:
        """``answered`` robots.txt or sitemap requests ended: once start() is read and none is
        left, the progress total is known (progress bar and ETA)."""
        self.sitemaps_pending -= answered
        if self.counting and self.start_read and self.sitemaps_pending <= 0:
            self.crawler.stats.set_value(PROGRESS_TOTAL_KNOWN, 1)

    def parse_robots(self, response: Response) -> Iterator[scrapy.Request]:
        sitemaps = list(sitemap_urls_from_robots(response.body, base_url=response.url))
        if not sitemaps:
            sitemaps = [response.urljoin("/sitemap.xml")]
        for url in sitemaps:
            if request := self._sitemap_request(url, self.parse_sitemap):
                yield request
        self._sitemap_done()

    def parse_sitemap(self, response: Response) -> Iterator[scrapy.Request]:
        try:
            sitemap = Sitemap(response.body)
        except Exception as exc:  # malformed XML: record and go on
            self.logger.warning(f"unreadable sitemap {response.url}: {exc}")
            self._sitemap_done()
            return
        for entry in sitemap:
            loc = entry.get("loc", "")
            if sitemap.type == "sitemapindex":
                if request := self._sitemap_request(loc, self.parse_sitemap):
                    yield request
            elif self.links.matches(loc):
                request = self._request(loc, depth=1)
                if request is not None:
                    yield request
        self._sitemap_done()

    def on_error(self, failure: Failure) -> Any:
        if isinstance(failure.value, IgnoreRequest) and not isinstance(failure.value, HttpError):
            if not isinstance(failure.value, IncrementalSkip):  # 304, min_age: counted apart
                self.crawler.stats.inc_value(PROGRESS_ENDED)  # a request done (progress)
            return None  # robots.txt, offsite, 304, min_age: counted in stats elsewhere
        self.count_fetch_error(failure)
        request = failure.request  # type: ignore[attr-defined]
        return error_item(failure, request.meta.get("redirect_urls", [request.url])[0])

    def on_error_quiet(self, failure: Failure) -> None:
        self.logger.info(f"no sitemap: {failure.request.url}: {failure.value}")  # type: ignore[attr-defined]
        if not isinstance(failure.value, HttpError):  # an HTTP error's response is counted
            self.crawler.stats.inc_value(PROGRESS_ENDED)
        self._sitemap_done()
