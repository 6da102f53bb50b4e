"""``SafeResolver``: Scrapy's caching DNS resolver, refusing non-public answers nobody approved.

Installed with ``TWISTED_DNS_RESOLVER``. Scrapy installs one resolver per process, shared by
every crawler in it, and a lookup does not say which crawler asks. So the policy of each crawler
is applied before its requests connect, by ``PrivateTargetMiddleware``: it resolves a host name
with ``lookup`` (no check, the cache filled for the connection) and judges the answer with its
own crawler's ``NamedTargets`` (see ``crawler.safety.named``); an allowed non-public answer is
recorded there (``approve``).

At connection time every answer, cached or fresh, is checked again (``check``), so a name that
resolved to a public address for the middleware and to 127.0.0.1 later (DNS rebinding) is
refused: a non-public answer passes only when a live crawler named that host (a seed, a proxy)
or approved that exact answer, or when the process's own settings set
``SAFETY_ALLOW_PRIVATE_TARGETS`` (``scrapy crawl`` runs one crawler: its settings are the
process's). Another crawler's ``SAFETY_ALLOW_PRIVATE_TARGETS`` opens nothing here. Otherwise the
lookup fails with ``BlockedLookup``, a ``DNSLookupError``.

IP literals never reach a resolver: the middleware checks them. Requests through a proxy are
resolved by the proxy, and browsers (scrapy-playwright) resolve names themselves.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import TYPE_CHECKING

from scrapy.resolver import CachingThreadedResolver
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.error import DNSLookupError

from crawler.safety.named import LIVE
from crawler.safety.targets import non_public_reason

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scrapy.crawler import Crawler
    from twisted.internet.base import ReactorBase
    from twisted.internet.defer import Deferred

    from crawler.safety.named import NamedTargets


class BlockedLookup(DNSLookupError):
    """A host name that resolves to a non-public address the user did not name."""


class SafeResolver(CachingThreadedResolver):
    """Resolves like ``CachingThreadedResolver``; refuses non-public answers nobody approved."""

    def __init__(
        self,
        reactor: ReactorBase,
        cache_size: int,
        timeout: float,
        targets: NamedTargets | None = None,  # a fixed policy, consulted with the live ones
        allow_private: bool = False,
    ) -> None:
        super().__init__(reactor, cache_size, timeout)
        self.targets = targets
        self.allow_private = allow_private

    @classmethod
    def from_crawler(cls, crawler: Crawler, reactor: ReactorBase) -> SafeResolver:
        # Scrapy passes the CrawlerProcess here: only its settings are read.
        settings = crawler.settings
        cache_size = settings.getint("DNSCACHE_SIZE") if settings.getbool("DNSCACHE_ENABLED") else 0
        return cls(
            reactor,
            cache_size,
            settings.getfloat("DNS_TIMEOUT"),
            allow_private=settings.getbool("SAFETY_ALLOW_PRIVATE_TARGETS"),
        )

    def getHostByName(self, name: str, timeout: Sequence[int] = ()) -> Deferred[str]:
        d = self.lookup(name, timeout)
        d.addCallback(self.check, name)
        return d

    def lookup(self, name: str, timeout: Sequence[int] = ()) -> Deferred[str]:
        """The (cached) answer for ``name``, unchecked: the caller judges it with its policy."""
        return super().getHostByName(name, timeout)

    def check(self, address: str, name: str) -> str:
        """``address`` if a connection to ``name`` may use it, else ``BlockedLookup``."""
        if self.allow_private:
            return address
        try:
            reason = non_public_reason(ip_address(address))
        except ValueError:
            reason = "not an IP address"
        if reason is None:
            return address
        if LIVE.permits(name, address) or (
            self.targets is not None and self.targets.permits(name, address)
        ):
            return address
        raise BlockedLookup(f"{name} resolves to {address} ({reason})")


async def resolve(host: str) -> str:
    """The address ``host`` resolves to, as the connection will see it, before any check."""
    from twisted.internet import reactor

    resolver = getattr(reactor, "resolver", None)
    lookup = (
        resolver.lookup if isinstance(resolver, SafeResolver) else reactor.resolver.getHostByName
    )
    return await maybe_deferred_to_future(lookup(host))
