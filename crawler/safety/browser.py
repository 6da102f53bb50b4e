"""``abort_private_request``: the target policy for what a rendered page loads in Chromium.

Chromium resolves names and loads a page's scripts, images and XHR itself, past Scrapy's
middlewares and resolver; scrapy-playwright asks ``PLAYWRIGHT_ABORT_REQUEST`` about each of
those requests. This function aborts those to non-HTTP schemes (``data:`` and ``blob:`` stay
allowed: pages build them in memory) and to non-public addresses the user did not name, with
IP literals read in every spelling and host names resolved through the crawl's resolver first.
Chromium then resolves the name again itself, so this is a check, not a guarantee.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy.utils.defer import maybe_deferred_to_future

from crawler.safety.named import NAMED_TARGETS
from crawler.safety.resolver import BlockedLookup
from crawler.safety.targets import disguise, non_public_reason, parse_ip

if TYPE_CHECKING:
    from playwright.async_api import Request as BrowserRequest

IN_MEMORY_SCHEMES = frozenset({"data", "blob", "about"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


async def abort_private_request(request: BrowserRequest) -> bool:
    """True (abort) for a browser request to another scheme or an unnamed non-public target."""
    try:
        url = urlsplit(request.url)
        port = url.port or DEFAULT_PORTS.get(url.scheme, 0)
    except ValueError:
        return True
    if url.scheme in IN_MEMORY_SCHEMES:
        return False
    if url.scheme not in DEFAULT_PORTS:
        return True
    host = url.hostname or ""
    if NAMED_TARGETS.allow_private or (
        disguise(host) is None and NAMED_TARGETS.origin_named(host, port)
    ):
        return False
    ip = parse_ip(host)
    if ip is not None:
        return non_public_reason(ip) is not None
    from twisted.internet import reactor

    try:
        address = await maybe_deferred_to_future(reactor.resolver.getHostByName(host))
    except BlockedLookup:
        return True
    except Exception:
        return False  # Chromium reports the failed lookup itself
    return non_public_reason(ip_address(address)) is not None
