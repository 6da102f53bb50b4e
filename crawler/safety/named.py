"""``NamedTargets``: one crawler's private-target policy, and the registry of the live ones.

Each crawler has its own ``NamedTargets`` (``targets_for(crawler)``): the origins its seeds
named, the hosts of its proxies, its ``SAFETY_ALLOW_PRIVATE_TARGETS`` switch, and the non-public
answers its middleware approved for host names. Nothing in it is shared with another crawler of
the same process (Scrapyd, a ``CrawlerProcess`` running several spiders, tests), so one
crawler's permission or named origins never authorise another's links or redirects.

Scrapy installs one DNS resolver per process and it only sees host names, not the crawler that
asks. So the per-crawler decision is taken before connecting, where the crawler is known:
``PrivateTargetMiddleware`` resolves each host name itself and judges the answer with its own
crawler's policy, and the browser check (``crawler.safety.browser``) is bound to its crawler.
The resolver (``crawler.safety.resolver``) then only holds the line at connection time against
an answer that changed since (DNS rebinding, with the DNS cache off or evicted): a non-public
answer passes only when a live crawler named that host or approved that exact answer
(``LIVE.permits``). A crawler is live from its middleware's creation until its engine stops;
the registry holds crawlers weakly, so a crawler that is dropped leaves nothing behind.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from crawler.safety.targets import disguise, host_key

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

# A site named on http also covers its https twin, and the other way round.
_TWIN_PORTS = {80: 443, 443: 80}


@dataclass(eq=False)  # compared by identity: one per crawler, kept in weak sets
class NamedTargets:
    """Origins (host, port) and host names a crawler named, and its allow-private switch."""

    allow_private: bool = False
    origins: set[tuple[str, int]] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    # (host, address): non-public answers this crawler's middleware let its requests use
    answers: set[tuple[str, str]] = field(default_factory=set)

    def name(self, host: str, port: int) -> None:
        key = host_key(host)
        self.hosts.add(key)
        self.origins.add((key, port))
        if port in _TWIN_PORTS:
            self.origins.add((key, _TWIN_PORTS[port]))

    def name_host(self, host: str) -> None:
        """Name a host on every port (a proxy the user configured)."""
        self.hosts.add(host_key(host))

    def approve(self, host: str, address: str) -> None:
        """Let a connection to ``host`` use ``address``, a non-public answer judged allowed."""
        self.answers.add((host_key(host), address))

    def origin_named(self, host: str, port: int) -> bool:
        return (host_key(host), port) in self.origins

    def host_named(self, host: str) -> bool:
        return host_key(host) in self.hosts

    def permits(self, host: str, address: str) -> bool:
        """May a connection to ``host`` use the non-public ``address``?"""
        return self.host_named(host) or (host_key(host), address) in self.answers


class LiveTargets:
    """The policies of the crawlers running in this process (what the resolver consults)."""

    def __init__(self) -> None:
        self._by_crawler: weakref.WeakKeyDictionary[Crawler, NamedTargets] = (
            weakref.WeakKeyDictionary()
        )
        self._live: weakref.WeakSet[NamedTargets] = weakref.WeakSet()

    def targets_for(self, crawler: Crawler) -> NamedTargets:
        """The policy of ``crawler`` (created on first use), registered as live."""
        targets = self._by_crawler.get(crawler)
        if targets is None:
            allow = crawler.settings.getbool("SAFETY_ALLOW_PRIVATE_TARGETS")
            targets = self._by_crawler[crawler] = NamedTargets(allow_private=allow)
        self._live.add(targets)
        return targets

    def retire(self, crawler: Crawler) -> None:
        """``crawler`` stopped: its names and approvals no longer count at connection time."""
        targets = self._by_crawler.get(crawler)
        if targets is not None:
            self._live.discard(targets)

    def permits(self, host: str, address: str) -> bool:
        return any(targets.permits(host, address) for targets in list(self._live))


# The process-wide registry (see the module docstring).
LIVE = LiveTargets()
targets_for = LIVE.targets_for


_DEFAULT_PORTS = {"http": 80, "https": 443}


def seed_origin(url: str) -> tuple[str, int] | None:
    """The (host, port) a seed URL names, or None (another scheme, a disguised IP literal, a
    URL that does not parse)."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    host = parts.hostname or ""
    if not host or port is None or disguise(host) is not None:
        return None
    return host, port
