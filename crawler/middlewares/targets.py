"""``PrivateTargetMiddleware``: no request reaches a non-public address the user did not name.

Settings: ``SAFETY_ALLOW_PRIVATE_TARGETS`` (default False: block). Stats:
``safety/blocked_private`` and ``safety/blocked_scheme``.

Before a request connects:

* a scheme other than http/https is refused (``Location: file:///etc/passwd`` redirects, which
  Scrapy's redirect middleware leaves unfollowed, are counted here too);
* the policy is this crawler's own (``crawler.safety.named.targets_for(crawler)``): another
  crawler in the same process, allowing private targets or naming other seeds, changes nothing
  here; it is live for the resolver from now until the engine stops;
* seeds name their origin, host and port: every URL of a spider argument parsed by ``seed_url``
  when the spider opens, and every seed request as it passes, that is, one not the product of
  a redirect that either carries ``meta["seed"] = True`` (set by our spiders, ``scrapy shell``)
  or is a start request (Scrapy's ``meta["is_start_request"]``: ``start_urls`` and what
  ``start()`` yields, in any spider, and the URL of ``scrapy fetch``/``parse``/``check``);
  links, redirects and browser sub-requests are never seeds;
* an IP literal host in any spelling (``127.1``, ``0x7f000001``, ``[::ffff:127.0.0.1]``) that is
  not public is refused unless its origin was named, spelled plainly;
* a host name is resolved first (``crawler.safety.resolver.resolve``: the process's resolver,
  whose cache the connection then reuses, without its check) and refused when its address is
  not public and its origin was not named; with private targets allowed, a non-public answer is
  approved for this crawler instead. The resolver checks the answer again when the connection
  resolves the name (DNS rebinding) against the live crawlers' names and approvals.
"""

from __future__ import annotations

import logging
from ipaddress import ip_address
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit
from urllib.request import getproxies

from scrapy import signals
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.reactor import is_reactor_installed

from crawler.meta import is_seed_request
from crawler.safety.named import LIVE, NamedTargets
from crawler.safety.resolver import SafeResolver, resolve
from crawler.safety.targets import (
    BlockedTarget,
    disguise,
    non_public_reason,
    parse_ip,
    seed_url,
)

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

BLOCKED_PRIVATE = "safety/blocked_private"
BLOCKED_SCHEME = "safety/blocked_scheme"
ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
HINT = "set SAFETY_ALLOW_PRIVATE_TARGETS=True to allow private targets"


class PrivateTargetMiddleware:
    """Refuses non-HTTP schemes and non-public targets the user did not name (see module doc)."""

    def __init__(self, crawler: Crawler, targets: NamedTargets, allow_private: bool) -> None:
        self.crawler = crawler
        self.targets = targets
        self.allow_private = allow_private
        self.reported: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PrivateTargetMiddleware:
        allow = crawler.settings.getbool("SAFETY_ALLOW_PRIVATE_TARGETS")
        targets = LIVE.targets_for(crawler)  # this crawler's own policy
        targets.allow_private = allow
        for proxy in getproxies().values():  # proxies from the environment are named by the user
            if host := _hostname(proxy):
                targets.name_host(host)
        if not allow:  # the resolver is installed when the reactor starts
            crawler.signals.connect(_warn_without_safe_resolver, signal=signals.engine_started)
        middleware = cls(crawler, targets, allow)
        crawler.signals.connect(middleware.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(middleware.engine_stopped, signal=signals.engine_stopped)
        return middleware

    def engine_stopped(self) -> None:
        LIVE.retire(self.crawler)

    def spider_opened(self, spider: Spider) -> None:
        """Name every seed given as a spider argument now, before any request or redirect."""
        spec = getattr(spider, "arguments_spec", {})
        values = getattr(spider, "arguments", {})
        for name, arg in spec.items():
            if arg.parse is seed_url and values.get(name):
                urls = values[name] if isinstance(values[name], list) else [values[name]]
                for url in urls:
                    self._name(url)

    def _name(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if disguise(host) is None and parts.scheme in DEFAULT_PORTS:
            self.targets.name(host, parts.port or DEFAULT_PORTS[parts.scheme])

    async def process_request(self, request: Request) -> None:
        url = urlparse_cached(request)
        if url.scheme not in ALLOWED_SCHEMES:
            raise self._blocked(request, BLOCKED_SCHEME, f"scheme {url.scheme!r} is not crawled")
        host = url.hostname or ""
        if self.allow_private:
            await self._approve(host)
            return
        try:
            port = url.port or DEFAULT_PORTS[url.scheme]
        except ValueError:
            return  # an invalid port: the download fails on its own
        if is_seed_request(request) and disguise(host) is None:  # seeds from URL files are named
            self.targets.name(host, port)  # as they are requested (the URL parsed once)
        if (proxy := request.meta.get("proxy")) and (proxy_host := _hostname(proxy)):
            self.targets.name_host(proxy_host)
        reason = await self._non_public(host, port)
        if reason is not None:
            raise self._blocked(request, BLOCKED_PRIVATE, f"{reason}, not a named target; {HINT}")

    async def _non_public(self, host: str, port: int) -> str | None:
        """Why ``host:port`` may not be reached, or None when it may."""
        if self.targets.origin_named(host, port) and disguise(host) is None:
            return None
        ip = parse_ip(host)
        if ip is not None:
            reason = non_public_reason(ip)
            return None if reason is None else f"{ip} is {reason}"
        try:  # cached: the connection's own lookup reuses this answer
            address = await resolve(host)
        except Exception:
            return None  # the download reports the lookup failure itself
        reason = non_public_reason(ip_address(address))
        return None if reason is None else f"{host} resolves to {address} ({reason})"

    async def _approve(self, host: str) -> None:
        """Private targets allowed: let the connection use the answer this crawler accepts."""
        if parse_ip(host) is not None:
            return  # a literal: no lookup to approve
        try:
            address = await resolve(host)
        except Exception:
            return  # the download reports the lookup failure itself
        if non_public_reason(ip_address(address)) is not None:
            self.targets.approve(host, address)

    def process_response(self, request: Request, response: Response) -> Response:
        location = response.headers.get(b"Location")
        if location and 300 <= response.status < 400:
            target = urljoin(request.url, location.decode("latin-1"))
            scheme = urlsplit(target).scheme.lower()
            if scheme not in ALLOWED_SCHEMES:
                self._count(BLOCKED_SCHEME, target, f"redirect from {request.url} not followed")
        return response

    def _blocked(self, request: Request, stat: str, reason: str) -> BlockedTarget:
        self._count(stat, request.url, reason)
        kind = "scheme" if stat == BLOCKED_SCHEME else "private"
        return BlockedTarget(f"{_short(request.url)}: {reason}", kind=kind)

    def _count(self, stat: str, url: str, reason: str) -> None:
        self.crawler.stats.inc_value(stat)
        origin = url.split("/", 3)[:3]
        key = "/".join(origin)
        # the first refusal per origin is a warning; repeats would flood the log
        level = logging.DEBUG if key in self.reported else logging.WARNING
        self.reported.add(key)
        logger.log(level, "Blocked %s: %s", _short(url), reason)


def _hostname(url: str) -> str | None:
    try:
        return urlsplit(url if "://" in url else f"//{url}").hostname
    except ValueError:
        return None


def _short(url: str) -> str:
    return url if len(url) <= 200 else f"{url[:200]}…"


def _warn_without_safe_resolver() -> None:
    if not is_reactor_installed():
        return
    from twisted.internet import reactor

    if not isinstance(getattr(reactor, "resolver", None), SafeResolver):
        logger.warning(
            "TWISTED_DNS_RESOLVER is not crawler.safety.resolver.SafeResolver: host names are"
            " checked before a request, but not again when its connection resolves them"
        )
