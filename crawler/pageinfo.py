"""Build ``PageItem``s: what a fetched page says about itself, or why it could not be fetched."""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from lxml import etree
from scrapy.http import TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.response import get_base_url

from crawler.items import PageItem

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from parsel import Selector
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
    item.word_count = sum(len(text.split()) for text in _strings(sel, _VISIBLE_TEXT))
    item.internal_links, item.external_links = count_links(
        _hrefs(sel), get_base_url(response), _host(response.url)
    )


def _strings(sel: Selector, xpath: str) -> list[str]:
    """The string results of ``xpath`` straight from lxml: no ``Selector`` per match (a hostile
    page has millions of text nodes)."""
    root = sel.root
    if isinstance(root, etree._Element):
        return [str(value) for value in root.xpath(xpath)]
    return sel.xpath(xpath).getall()


def _hrefs(sel: Selector) -> Iterator[str]:
    """Every ``<a href>`` of the page, one at a time (a hostile page has millions)."""
    root = sel.root
    if not isinstance(root, etree._Element):
        yield from sel.xpath("//a/@href").getall()
        return
    for anchor in root.iter("a"):
        href = anchor.get("href")
        if href is not None:
            yield href


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


@functools.lru_cache(maxsize=4096)
def _netloc_host(netloc: str) -> str:
    return _host(f"http://{netloc}/")


def _authority_host(rest: str) -> str:
    """The host of ``//netloc/…`` (pages link to few hosts: the parse is cached per netloc)."""
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop, 2)
        if 0 <= found < end:
            end = found
    return _netloc_host(rest[2:end])


def _joined_host(base: str, href: str) -> str | None:
    """The host of ``href`` resolved with ``urljoin``; ``None`` when that is not an http(s) URL."""
    target = urljoin(base, href)
    if not target.lower().startswith(("http://", "https://")):
        return None
    return _host(target)


def count_links(hrefs: Iterable[str], base: str, own_host: str) -> tuple[int, int]:
    """(internal, external) http(s) links among ``hrefs`` resolved against ``base``.

    The same counts as ``urljoin`` + ``urlsplit`` per link, without them for the usual forms:
    a relative link is on the base's host, ``//host/…`` and ``http(s)://host/…`` name theirs,
    and other schemes (``mailto:``, ``javascript:``…) are not links to pages. A link whose host
    cannot be parsed (``http://[::1``) is not counted.
    """
    base_http = base.lower().startswith(("http://", "https://"))
    base_host = _host(base) if base_http else ""
    internal = external = 0
    for raw in hrefs:
        href = raw.strip()
        scheme = _SCHEME.match(href)
        try:
            if scheme and scheme.group(1).lower() not in ("http", "https"):
                continue
            if not scheme and not base_http:
                continue  # relative to a non-http base: not a page link
            if scheme or href.startswith("//"):
                rest = href[scheme.end() :] if scheme else href
                named = rest.startswith("//") and _authority_host(rest)
                # "http:x", "https:/x", "//" and the like: whatever urljoin makes of them
                host = named or _joined_host(base, href)
            else:
                host = base_host
        except ValueError:
            continue
        if host is None:
            continue
        if host == own_host:
            internal += 1
        else:
            external += 1
    return internal, external


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
