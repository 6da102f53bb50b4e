"""``SafeAiohttpDownloadHandler``: Scrapy's aiohttp handler, connecting where the policy allows.

Scrapy 2.19's aiohttp download handler costs less CPU per page than the default (Twisted) one,
but its ``TCPConnector`` resolves host names itself, past the process's ``SafeResolver``: a
name that answered a public address to ``PrivateTargetMiddleware`` and 127.0.0.1 to the
connection (DNS rebinding, or a request that skipped the middleware) would connect. This
subclass gives the connector a ``PolicyResolver`` instead, which

* asks the process's resolver for the answer (``crawler.safety.resolver.resolve``: the same
  cached lookup the middleware judged, so the connection uses the address that was checked);
* applies the policy of the handler's own crawler (``crawler.safety.named.targets_for``): a
  non-public answer passes only when that crawler allows private targets, named the host (a
  seed, a proxy) or approved that exact answer; otherwise the lookup fails with
  ``BlockedLookup``'s reason, which Scrapy reports as a ``CannotResolveHostError``.

aiohttp's own DNS cache is off, so every new connection is checked, as with ``SafeResolver``.
aiohttp connects to an IP literal without asking its resolver, where Twisted asks
``SafeResolver``: the handler checks the literal it will connect to (the request's host, or its
proxy's) with the same policy before each download, a cached parse. The fast profile uses this
handler for http and https; ``-s DOWNLOAD_HANDLERS='{"http": …}'`` picks another.
"""

from __future__ import annotations

import socket
from functools import lru_cache
from ipaddress import IPv6Address, ip_address
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from scrapy.core.downloader.handlers._aiohttp import AiohttpDownloadHandler, _ClientResponse
from scrapy.core.downloader.handlers._base_streaming import BaseStreamingDownloadHandler
from scrapy.exceptions import CannotResolveHostError
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.ssl import _make_ssl_context

from crawler.safety.named import targets_for
from crawler.safety.resolver import BlockedLookup, resolve
from crawler.safety.targets import non_public_reason, parse_ip

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from crawler.safety.named import NamedTargets


class PolicyResolver(AbstractResolver):
    """Resolves through the process's resolver; refuses answers ``targets`` does not permit."""

    def __init__(self, targets: NamedTargets) -> None:
        self.targets = targets

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            address = self.check(await resolve(host), host)
        except BlockedLookup as blocked:
            # aiohttp reports an OSError's strerror (as CannotResolveHostError): say why there
            raise OSError(None, str(blocked)) from blocked
        kind = socket.AF_INET6 if isinstance(ip_address(address), IPv6Address) else socket.AF_INET
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=kind,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
        ]

    def check(self, address: str, host: str) -> str:
        """``address`` if a connection to ``host`` may use it, else ``BlockedLookup``."""
        if self.targets.allow_private:
            return address
        try:
            reason = non_public_reason(ip_address(address))
        except ValueError:
            reason = "not an IP address"
        if reason is None or self.targets.permits(host, address):
            return address
        raise BlockedLookup(f"{host} resolves to {address} ({reason})")

    async def close(self) -> None:
        pass


class SafeAiohttpDownloadHandler(AiohttpDownloadHandler):
    """Scrapy's aiohttp handler with a ``PolicyResolver`` (see the module docstring)."""

    # Scrapy marks its aiohttp handler experimental; ours is pinned to Scrapy 2.19 and run by
    # the safety tests and tests/test_pinned_internals.py, so the warning on every crawl is off.
    experimental: ClassVar[bool] = False

    def __init__(self, crawler: Crawler) -> None:
        # The parent's __init__, with the connector given our resolver and no DNS cache of its own.
        BaseStreamingDownloadHandler.__init__(self, crawler)
        self._ssl_context = _make_ssl_context(crawler.settings)
        self.resolver = PolicyResolver(targets_for(crawler))
        # literal hosts already let through: a crawler's policy only grows while it runs
        self._permitted: set[str] = set()
        connector = aiohttp.TCPConnector(
            local_addr=self._bind_address,
            limit=self._pool_size_total,
            limit_per_host=self._pool_size_per_host,
            resolver=self.resolver,
            use_dns_cache=False,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            response_class=_ClientResponse,
            skip_auto_headers=("Accept", "Accept-Encoding", "Content-Type", "User-Agent"),
        )

    async def download_request(self, request: Request) -> Response:
        proxy = request.meta.get("proxy")
        host = _host(proxy) if proxy else urlparse_cached(request).hostname or ""
        if host not in self._permitted and (literal := parse_ip(host)) is not None:
            try:  # no lookup will judge a literal: judge it here
                self.resolver.check(str(literal), host)
            except BlockedLookup as blocked:
                raise CannotResolveHostError(str(blocked)) from blocked
            self._permitted.add(host)
        return await super().download_request(request)


@lru_cache(maxsize=64)  # a crawl uses a few proxies
def _host(proxy: str) -> str:
    """The host a proxy URL (``http://user:pw@host:port``, or ``host:port``) connects to."""
    return urlsplit(proxy if "://" in proxy else f"//{proxy}").hostname or ""
