"""``NamedTargets``: the targets the user named, shared by the middleware and the DNS resolver.

Scrapy installs one resolver per process and it only sees host names, so what the user named
lives in one process-wide object: ``PrivateTargetMiddleware`` adds the origin of every seed
request to it, and ``SafeResolver`` lets a host name resolve to a non-public address only when
that name is in it (or private targets are allowed). Several crawlers in one process share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawler.safety.targets import host_key

# A site named on http also covers its https twin, and the other way round.
_TWIN_PORTS = {80: 443, 443: 80}


@dataclass
class NamedTargets:
    """Origins (host, port) and host names the user named, and the allow-private switch."""

    allow_private: bool = False
    origins: set[tuple[str, int]] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)

    def name(self, host: str, port: int) -> None:
        key = host_key(host)
        self.hosts.add(key)
        self.origins.add((key, port))
        if port in _TWIN_PORTS:
            self.origins.add((key, _TWIN_PORTS[port]))

    def name_host(self, host: str) -> None:
        """Name a host on every port (a proxy the user configured)."""
        self.hosts.add(host_key(host))

    def origin_named(self, host: str, port: int) -> bool:
        return (host_key(host), port) in self.origins

    def host_named(self, host: str) -> bool:
        return host_key(host) in self.hosts


# The process-wide instance (see the module docstring).
NAMED_TARGETS = NamedTargets()
