"""The demo shop's routes: which page answers a request path (the server's one entry point).

The shop's pages live in ``crawler.demo.pages``, the JavaScript-only ones (under ``/js/``) in
``crawler.demo.jspages``, which builds on the former; only this module knows both.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from crawler.demo.catalog import PRODUCT_COUNT
from crawler.demo.jspages import js_route
from crawler.demo.pages import (
    JPEG,
    NO_REVISIONS,
    Page,
    about,
    catalog_index,
    home,
    html_page,
    legacy,
    listing,
    not_found,
    product_page,
    redirect,
    robots,
    sitemap,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping


def route(
    path: str,
    query: dict[str, list[str]],
    host: str,
    slow_seconds: float,
    revisions: Mapping[int, int] = NO_REVISIONS,
    broken: Iterable[str] = (),
) -> Page:
    """The page for a request path (without its query string); ``revisions``: product id ->
    how many times it was changed (see ``revised``); ``broken``: product fields whose markup
    is changed so that the spider finds nothing (see ``BREAKABLE_FIELDS``)."""
    static: dict[str, Callable[[], Page]] = {
        "/": home,
        "/catalog/": catalog_index,
        "/about": about,
        "/legacy": legacy,
        "/old-catalog": lambda: redirect("/catalog/"),
        "/robots.txt": lambda: robots(host),
        "/sitemap.xml": lambda: sitemap(host),
    }
    if path in static:
        return static[path]()
    if path.startswith("/js/"):
        return js_route(path, query, host)
    if path == "/slow":
        page = html_page("Slow page", "<h1>Slow page</h1><p>Worth the wait.</p>")
        page.delay = slow_seconds
        return page
    if match := re.fullmatch(r"/catalog/([a-z-]+)/", path):
        return listing(match[1], query, revisions)
    if match := re.fullmatch(r"/products/([^/]+)", path):
        return product_page(match[1], host, slow_seconds, revisions, broken)
    if (match := re.fullmatch(r"/old-products/([1-9][0-9]{0,3})", path)) and (
        int(match[1]) <= PRODUCT_COUNT
    ):
        return redirect(f"/products/{match[1]}")
    if path.startswith("/private/"):
        return html_page("Private", "<h1>Private</h1><p>Crawlers must not fetch this.</p>")
    if re.fullmatch(r"/images/[\w-]+\.jpg", path):
        return Page(JPEG, content_type="image/jpeg")
    return not_found()
