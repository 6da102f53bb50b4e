"""The base of our spiders: typed arguments, seed loading and fetch-error accounting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import scrapy
from scrapy.spidermiddlewares.httperror import HttpError

from crawler import stats as keys
from crawler.arguments import Arg, parse_arguments
from crawler.seeds import BadSeed, Seed, read_seed_file

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from twisted.python.failure import Failure


class BaseSpider(scrapy.Spider):
    """Parses ``-a`` arguments declared in ``arguments_spec`` into ``self.arguments``.

    Unknown arguments are refused (they would otherwise overwrite spider attributes such as
    ``allowed_domains``); malformed ones raise ``ArgumentError`` with a one-line message.
    """

    arguments_spec: ClassVar[dict[str, Arg]] = {}

    def __init__(self, **kwargs: Any) -> None:
        # `-a name=…` is refused like any undeclared argument: it would rename the spider.
        self.arguments: dict[str, Any] = self.parse_arguments(kwargs)
        super().__init__()

    @classmethod
    def parse_arguments(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Typed values of the raw ``-a`` strings; ``ArgumentError`` when one is bad."""
        values = parse_arguments(cls.arguments_spec, raw)
        cls.check_arguments(values)
        return values

    @classmethod
    def check_arguments(cls, values: dict[str, Any]) -> None:
        """Checks across arguments (e.g. one of two is required); raise ``ArgumentError``."""

    def iter_seeds(self, urls: list[str] | None, path: str | None) -> Iterator[Seed]:
        """Seeds from ``-a url=…`` then from ``-a urls=FILE``; bad file lines are logged, skipped.

        A URL given twice is fetched once (``seeds/duplicate`` counts the repeats).
        """
        seen: set[str] = set()
        sources: list[Iterator[Seed | BadSeed]] = [iter(Seed(u, "argument") for u in urls or [])]
        if path:
            sources.append(read_seed_file(path))
        for source in sources:
            for seed in source:
                if isinstance(seed, BadSeed):
                    self.crawler.stats.inc_value("seeds/invalid")
                    self.logger.warning(
                        f"{seed.source}: skipped invalid URL {seed.text[:200]!r}: {seed.reason}"
                    )
                    continue
                if seed.url in seen:
                    self.crawler.stats.inc_value("seeds/duplicate")
                    continue
                seen.add(seed.url)
                self.crawler.stats.inc_value("seeds/valid")
                yield seed

    def count_fetch_error(self, failure: Failure) -> None:
        """Count a request that ended in an error and log it in one line."""
        self.crawler.stats.inc_value(keys.FETCH_ERRORS)
        request = getattr(failure, "request", None)
        url = request.url if request is not None else "?"
        exc = failure.value
        reason = (
            f"HTTP {exc.response.status}"
            if isinstance(exc, HttpError)
            else f"{type(exc).__name__}: {exc}"
        )
        self.logger.info(f"fetch failed: {url}: {reason}")
