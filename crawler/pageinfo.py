"""Build ``PageItem``s: what a fetched page says about itself, or why it could not be fetched."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy.http import TextResponse
from scrapy.spidermiddlewares.httperror import HttpError

from crawler.items import PageItem

if TYPE_CHECKING:
    from scrapy.http import Response
    from twisted.python.failure import Failure

_VISIBLE_TEXT = (
    "//body//text()[not(ancestor::script or ancestor::style or ancestor::noscript"
    " or ancestor::template)]"
)


def _host(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def fetched_with(response: Response) -> str:
    """``"browser"`` for a page rendered by scrapy-playwright, else ``"http"``."""
    return "browser" if "playwright" in response.flags else "http"


def page_item(response: Response, url: str) -> PageItem:
    """The ``PageItem`` of a response to the request for ``url`` (before redirects)."""
    content_type = response.headers.get(b"Content-Type")
    item = PageItem(
        url=url,
        final_url=response.url,
        status=response.status,
        content_type=content_type.decode("latin-1") if content_type else None,
        content_length=len(response.body),
        content_hash=hashlib.sha256(response.body).hexdigest(),
        response_time=response.meta.get("download_latency"),
        fetched_at=datetime.now(UTC),
        fetched_with=fetched_with(response),
    )
    if response.status >= 400:
        item.error = f"HTTP {response.status}"
    if isinstance(response, TextResponse) and _looks_like_html(response):
        _add_html_fields(item, response)
    return item


def _looks_like_html(response: TextResponse) -> bool:
    ctype = (response.headers.get(b"Content-Type") or b"text/html").lower()
    return b"html" in ctype


def _add_html_fields(item: PageItem, response: TextResponse) -> None:
    sel = response.selector
    item.title = sel.xpath("string(//title)").get() or None
    item.meta_description = sel.xpath(
        "//meta[translate(@name,'DESCRIPTION','description')='description']/@content"
    ).get()
    item.h1 = sel.xpath("string(//h1)").get() or None
    canonical = sel.xpath("//link[@rel='canonical']/@href").get()
    item.canonical = response.urljoin(canonical.strip()) if canonical else None
    item.language = (
        sel.xpath("/html/@lang").get()
        or sel.xpath("//meta[@http-equiv='content-language']/@content").get()
    )
    item.word_count = sum(len(text.split()) for text in sel.xpath(_VISIBLE_TEXT).getall())
    own_host = _host(response.url)
    internal = external = 0
    for href in sel.xpath("//a/@href").getall():
        target = response.urljoin(href.strip())
        if not target.startswith(("http://", "https://")):
            continue
        if _host(target) == own_host:
            internal += 1
        else:
            external += 1
    item.internal_links, item.external_links = internal, external


def error_item(failure: Failure, url: str) -> PageItem:
    """The ``PageItem`` of a request that failed: HTTP error status, timeout, DNS, refused…"""
    exc = failure.value
    if isinstance(exc, HttpError):
        return page_item(exc.response, url)
    request = getattr(failure, "request", None)
    rendered = request is not None and bool(request.meta.get("playwright"))
    first_line = next(iter(str(exc).strip().splitlines()), "")  # Playwright appends a call log
    return PageItem(
        url=url,
        final_url=request.url if request is not None else None,
        fetched_at=datetime.now(UTC),
        fetched_with="browser" if rendered else "http",
        error=f"{type(exc).__name__}: {first_line}".strip().rstrip(":"),
    )
