"""``ReservedNamesMiddleware``: host names that can never resolve fail at once, with no DNS query.

RFC 6761 reserves ``.invalid`` (never resolves) and RFC 7686 ``.onion`` (reachable through Tor
only): looking them up could only leak the name to the network and wait for an answer that cannot
come. Requests to such hosts fail in ``process_request`` with ``CannotResolveHostError`` (not
retried), before they reach the downloader, so no resolver is ever asked. This is also how the
tests make an unknown host without touching the network.

Settings: ``RESERVEDNAMES_ENABLED``, ``RESERVEDNAMES_SUFFIXES``. Stats: ``reservednames/refused``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scrapy.exceptions import CannotResolveHostError, NotConfigured
from scrapy.utils.httpobj import urlparse_cached

from crawler import defaults

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings


@dataclass(frozen=True)
class ReservedNamesConfig:
    suffixes: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> ReservedNamesConfig:
        if not settings.getbool("RESERVEDNAMES_ENABLED", defaults.RESERVEDNAMES_ENABLED):
            raise NotConfigured("RESERVEDNAMES_ENABLED is off")
        names = settings.getlist("RESERVEDNAMES_SUFFIXES", defaults.RESERVEDNAMES_SUFFIXES)
        suffixes = tuple(n.strip().strip(".").lower() for n in names if n.strip().strip("."))
        if not suffixes:
            raise NotConfigured("RESERVEDNAMES_SUFFIXES is empty")
        return cls(suffixes=suffixes)

    def reserved(self, host: str) -> str | None:
        """The reserved suffix ``host`` falls under, or None."""
        host = host.lower().rstrip(".")
        return next((s for s in self.suffixes if host == s or host.endswith(f".{s}")), None)


class ReservedNamesMiddleware:
    """Refuses requests to hosts under reserved, never-resolving names."""

    def __init__(self, crawler: Crawler, config: ReservedNamesConfig) -> None:
        self.crawler = crawler
        self.config = config

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ReservedNamesMiddleware:
        return cls(crawler, ReservedNamesConfig.from_settings(crawler.settings))

    def process_request(self, request: Request) -> None:
        host = urlparse_cached(request).hostname or ""
        suffix = self.config.reserved(host)
        if suffix is None:
            return
        self.crawler.stats.inc_value("reservednames/refused")
        request.meta["dont_retry"] = True
        raise CannotResolveHostError(
            f"{host}: names under .{suffix} never resolve (RFC 6761/7686); no DNS query was sent"
        )
