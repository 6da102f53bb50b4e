"""``SafeResolver``: Scrapy's caching DNS resolver, refusing non-public answers for unnamed hosts.

Installed with ``TWISTED_DNS_RESOLVER``. Every answer, cached or fresh, is checked when a
connection asks for it, so a name that resolves to a public address first and to 127.0.0.1 later
(DNS rebinding) is still refused. A host name resolves to a loopback, private, link-local or
otherwise non-public address only when the user named that host (a seed, or a configured proxy:
see ``crawler.safety.named``) or ``SAFETY_ALLOW_PRIVATE_TARGETS`` is on; otherwise the lookup
fails with ``BlockedLookup``, a ``DNSLookupError``.

``PrivateTargetMiddleware`` asks this resolver before each request connects, so a refusal is
counted there and never retried; the check here is what holds at connection time. IP literals
never reach a resolver: the middleware checks them. Requests through a proxy are resolved by the
proxy, and browsers (scrapy-playwright) resolve names themselves.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import TYPE_CHECKING

from scrapy.resolver import CachingThreadedResolver
from twisted.internet.error import DNSLookupError

from crawler.safety.named import NAMED_TARGETS, NamedTargets
from crawler.safety.targets import non_public_reason

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scrapy.crawler import Crawler
    from twisted.internet.base import ReactorBase
    from twisted.internet.defer import Deferred


class BlockedLookup(DNSLookupError):
    """A host name that resolves to a non-public address the user did not name."""


class SafeResolver(CachingThreadedResolver):
    """Resolves like ``CachingThreadedResolver``; refuses non-public answers for unnamed hosts."""

    def __init__(
        self,
        reactor: ReactorBase,
        cache_size: int,
        timeout: float,
        targets: NamedTargets = NAMED_TARGETS,
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
        d = super().getHostByName(name, timeout)
        d.addCallback(self.check, name)
        return d

    def check(self, address: str, name: str) -> str:
        """``address`` if ``name`` may connect to it, else ``BlockedLookup``."""
        if self.allow_private or self.targets.allow_private or self.targets.host_named(name):
            return address
        try:
            reason = non_public_reason(ip_address(address))
        except ValueError:
            reason = "not an IP address"
        if reason is not None:
            raise BlockedLookup(f"{name} resolves to {address} ({reason})")
        return address
