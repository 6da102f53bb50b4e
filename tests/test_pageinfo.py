from __future__ import annotations

import hashlib
from urllib.parse import urljoin, urlsplit

import pytest
from scrapy.http import HtmlResponse, Request, Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure

from crawler.pageinfo import count_links, error_item, page_item

HTML = b"""<!DOCTYPE html><html lang="de"><head><title> Hallo Welt </title>
<meta name="Description" content="Eine Seite"><link rel="canonical" href="/kanon"></head>
<body><h1>Gro\xc3\x9fe <b>\xc3\x9cberschrift</b></h1><p>eins zwei drei</p>
<script>var notCounted = 1;</script><style>p { color: red }</style>
<a href="/a">a</a> <a href="http://www.example.test/b">b</a> <a href="https://other.test/">c</a>
<a href="mailto:x@example.test">mail</a></body></html>"""


def response(body: bytes = HTML, status: int = 200, url: str = "http://example.test/p") -> Response:
    request = Request(url, meta={"download_latency": 0.25})
    return HtmlResponse(
        url, status=status, body=body, request=request,
        headers={"Content-Type": "text/html; charset=utf-8"},
    )  # fmt: skip


def test_page_item_fields() -> None:
    item = page_item(response(), "http://example.test/start")
    assert item.url == "http://example.test/start"
    assert item.final_url == "http://example.test/p"
    assert item.status == 200
    assert item.title == " Hallo Welt "  # cleaned later by the clean pipeline
    assert item.meta_description == "Eine Seite"
    assert item.h1 == "Große Überschrift"
    assert item.canonical == "http://example.test/kanon"
    assert item.language == "de"
    # Große Überschrift eins zwei drei a b c mail: script and style text is not counted
    assert item.word_count == 9
    assert (item.internal_links, item.external_links) == (2, 1)
    assert item.content_type == "text/html; charset=utf-8"
    assert item.content_length == len(HTML)
    assert item.content_hash == hashlib.sha256(HTML).hexdigest()
    assert item.response_time == 0.25
    assert item.fetched_at is not None and item.fetched_at.tzinfo is not None
    assert item.error is None


def test_http_error_becomes_an_item_with_its_status() -> None:
    failed = response(b"<html><title>Not here</title></html>", status=404)
    item = error_item(Failure(HttpError(failed, "Ignoring non-200 response")), "http://x.test/")
    assert (item.status, item.error, item.title) == (404, "HTTP 404", "Not here")


def test_network_error_becomes_an_item_with_its_error() -> None:
    failure = Failure(ConnectionRefusedError("Connection was refused by other side"))
    failure.request = Request("http://example.test/down")  # type: ignore[attr-defined]
    item = error_item(failure, "http://example.test/down")
    assert item.status is None
    assert item.error is not None and item.error.startswith("ConnectionRefusedError")
    assert item.fetched_at is not None


HREFS = [
    "", "#a", "/x", "y?z", "../up", "?q=1", " /padded ", "a.test/x", "//www.a.test/q", "//b.test",
    "//", "//a.test?x", "http://a.test/", "HTTP://WWW.A.TEST/x", "https://c.test",
    "http://u:p@A.test:80/x", "http://a.test?x", "http://a.test#f", "http://a.test:8080/",
    "http:foo", "https:/bar", "https:", "http://", "http://[::1]/", "//[::1]:80/",
    "http://[bad/", "//[bad/", "mailto:x@y", "javascript:void(0)", "tel:1", "ftp://a.test/",
    "data:text/html,hi", "C:\\x",
]  # fmt: skip


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower().removeprefix("www.")


@pytest.mark.parametrize(
    "base", ["http://a.test/dir/page", "https://www.a.test/", "http://b.test/", "file:///x"]
)
@pytest.mark.parametrize("href", HREFS)
def test_link_counts_agree_with_urljoin(base: str, href: str) -> None:
    # the fast path must count exactly what urljoin + urlsplit per link would
    try:
        target = urljoin(base, href.strip())
        page_link = target.lower().startswith(("http://", "https://"))
        expected = (0, 0) if not page_link else (1, 0) if _host(target) == "a.test" else (0, 1)
    except ValueError:  # an unparseable host is not counted
        expected = (0, 0)
    assert count_links([href], base, "a.test") == expected


def test_a_million_links_are_counted() -> None:
    hrefs = [f"/p/{n}" for n in range(500_000)] + [f"http://x.test/{n}" for n in range(500_000)]
    assert count_links(hrefs, "http://a.test/", "a.test") == (500_000, 500_000)
