"""The base of our spiders: typed arguments, seed loading and fetch-error accounting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

import scrapy
from scrapy.spidermiddlewares.httperror import HttpError

from crawler import stats as keys
from crawler.arguments import Arg, parse_arguments
from crawler.durations import parse_duration
from crawler.meta import FAILURE_SENT, MIN_AGE, REVALIDATE
from crawler.rendering.config import render_mode
from crawler.seeds import BadSeed, Seed, Shard, read_seed_file
from crawler.signals import fetch_failed

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure


def duration(text: str) -> float:
    """``-a min_age=…`` in seconds (``crawler.durations``: 90, 30m, 1h30m, 2d, 1w…)."""
    return parse_duration(text, allow_zero=True).total_seconds()


# `-a min_age=…`: recent URLs are skipped by crawler.middlewares.conditional
MIN_AGE_ARG = Arg(
    duration, help="skip pages fetched less than this long ago: 90, 30m, 1h30m, 2d, 1w"
)
# `-a render=…`: which pages go through headless Chromium (sets RENDER_MODE for the crawl)
RENDER_ARG = Arg(
    render_mode, help="never | always | auto: render pages in Chromium (default never)"
)


class BaseSpider(scrapy.Spider):
    """Parses ``-a`` arguments declared in ``arguments_spec`` into ``self.arguments``.

    Unknown arguments are refused (they would otherwise overwrite spider attributes such as
    ``allowed_domains``); malformed ones raise ``ArgumentError`` with a one-line message.
    """

    arguments_spec: ClassVar[dict[str, Arg]] = {}
    # False: the spider makes only the requests of its seeds, so a resumed frontier's done +
    # queued requests are the whole crawl (progress total and ETA)
    follows_links: ClassVar[bool] = True

    def __init__(self, **kwargs: Any) -> None:
        # `-a name=…` is refused like any undeclared argument: it would rename the spider.
        self.arguments: dict[str, Any] = self.parse_arguments(kwargs)
        super().__init__()

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        cls.settle_arguments(kwargs, spider.arguments, crawler.settings)
        if spider.arguments.get("render"):
            # before the add-ons run: RenderAddon installs the browser handler from RENDER_MODE
            crawler.settings.set("RENDER_MODE", spider.arguments["render"], priority="cmdline")
        return spider

    @classmethod
    def parse_arguments(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Typed values of the raw ``-a`` strings; ``ArgumentError`` when one is bad."""
        values = parse_arguments(cls.arguments_spec, raw)
        cls.check_arguments(values)
        return values

    @classmethod
    def check_arguments(cls, values: dict[str, Any]) -> None:
        """Checks across arguments (e.g. one of two is required); raise ``ArgumentError``."""

    @classmethod
    def settle_arguments(
        cls, raw: Mapping[str, Any], values: dict[str, Any], settings: BaseSettings
    ) -> None:
        """Reconcile ``values`` with the crawl's settings (a Scrapy setting the user set that an
        argument's default would override): update ``values`` or raise ``ArgumentError``.
        ``raw`` holds the arguments given; called by ``from_crawler`` and ``scrapy crawl``."""

    def iter_seeds(
        self, urls: list[str] | None, path: str | None, part: Shard | None = None
    ) -> Iterator[Seed]:
        """Seeds from ``-a url=…`` then from ``-a urls=FILE``; bad file lines are logged, skipped.

        A URL given twice is fetched once (``seeds/duplicate`` counts the repeats). With
        ``part`` (``-a shard=K/N``) only that part's URLs are yielded (``seeds/other_shard``
        counts the rest), and only part 0 reports bad lines, so N processes report each once.
        """
        seen: set[str] = set()
        sources: list[Iterator[Seed | BadSeed]] = [iter(Seed(u, "argument") for u in urls or [])]
        if path:
            sources.append(read_seed_file(path))
        stats = self.crawler.stats
        for source in sources:
            for seed in source:
                if isinstance(seed, BadSeed):
                    if part is None or part.index == 0:
                        stats.inc_value("seeds/invalid")
                        self.logger.warning(
                            f"{seed.source}: skipped invalid URL {seed.text[:200]!r}: {seed.reason}"
                        )
                    continue
                if part is not None and not part.takes(seed.url):
                    stats.inc_value("seeds/other_shard")
                    continue
                if seed.url in seen:
                    stats.inc_value("seeds/duplicate")
                    continue
                seen.add(seed.url)
                stats.inc_value("seeds/valid")
                yield seed

    def leaf_meta(self) -> dict[str, Any]:
        """Meta of a request whose links are not followed: revalidate it, honour ``min_age``.

        A 304 (or a skip) gives no links, so requests whose links the crawl needs must not
        carry it.
        """
        meta: dict[str, Any] = {REVALIDATE: True}
        if self.arguments.get("min_age"):
            meta[MIN_AGE] = self.arguments["min_age"]
        return meta

    def count_fetch_error(self, failure: Failure) -> None:
        """Count a request that ended in an error and log it in one line."""
        self.crawler.stats.inc_value(keys.FETCH_ERRORS)
        request = getattr(failure, "request", None)
        if (
            request is not None
            and not isinstance(failure.value, HttpError)
            and not request.meta.get(FAILURE_SENT)  # the download's failure was sent already
        ):
            self.crawler.signals.send_catch_log(fetch_failed, request=request, failure=failure)
        if not isinstance(failure.value, HttpError):  # an HTTP error's response is counted
            self.crawler.stats.inc_value(keys.PROGRESS_ENDED)  # a request done (progress)
        url = request.url if request is not None else "?"
        exc = failure.value
        reason = (
            f"HTTP {exc.response.status}"
            if isinstance(exc, HttpError)
            else f"{type(exc).__name__}: {exc}"
        )
        self.logger.info(f"fetch failed: {url}: {reason}")
