"""``abort_private_request``: the target policy for what a rendered page loads in Chromium.

Chromium resolves names and loads a page's scripts, images and XHR itself, past Scrapy's
middlewares and resolver; scrapy-playwright asks ``PLAYWRIGHT_ABORT_REQUEST`` about each of
those requests. This function aborts those to non-HTTP schemes (``data:`` and ``blob:`` stay
allowed: pages build them in memory) and to non-public addresses the user did not name, with
IP literals read in every spelling and host names resolved through the crawl's resolver first.
Chromium then resolves the name again itself, so this is a check, not a guarantee.

The policy is the crawler's own (``crawler.safety.named``): ``RenderDownloadHandler`` asks
``abort_request_for(crawler)``, which binds this check to its crawler's ``NamedTargets`` (its
allow switch and named origins, never another crawler's). Called unbound, as a plain
``PLAYWRIGHT_ABORT_REQUEST`` with scrapy-playwright's own handler, it knows no crawler and
allows public targets only.
"""

from __future__ import annotations

from functools import partial
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from crawler.safety.named import LIVE, NamedTargets
from crawler.safety.resolver import resolve
from crawler.safety.targets import disguise, non_public_reason, parse_ip

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from playwright.async_api import Request as BrowserRequest
    from scrapy.crawler import Crawler

IN_MEMORY_SCHEMES = frozenset({"data", "blob", "about"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def abort_request_for(
    crawler: Crawler, function: Callable[[BrowserRequest], Any] | None = None
) -> Callable[[BrowserRequest], Awaitable[bool] | bool]:
    """``abort_private_request`` bound to ``crawler``'s own policy; any other ``function``
    (a ``PLAYWRIGHT_ABORT_REQUEST`` of the user's) as it is."""
    if function is None:
        function = abort_private_request
    if function is abort_private_request:
        return partial(abort_private_request, targets=LIVE.targets_for(crawler))
    return function


async def abort_private_request(
    request: BrowserRequest, targets: NamedTargets | None = None
) -> bool:
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
    targets = targets or NamedTargets()  # no crawler: nothing named, nothing allowed
    if targets.allow_private or (disguise(host) is None and targets.origin_named(host, port)):
        return False
    ip = parse_ip(host)
    if ip is not None:
        return non_public_reason(ip) is not None
    try:
        address = await resolve(host)
    except Exception:
        return False  # Chromium reports the failed lookup itself
    return non_public_reason(ip_address(address)) is not None
