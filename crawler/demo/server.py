"""The demo shop over HTTP/1.1 (stdlib ``ThreadingHTTPServer``), on 127.0.0.1 by default.

``DemoSite`` serves it from a daemon thread (tests, ``python -m crawler.demo crawl``);
``serve_forever`` serves it until SIGINT/SIGTERM (``python -m crawler.demo serve``).

HTML pages carry a strong ``ETag`` (their body hash) and a ``Last-Modified``, and a request whose
``If-None-Match`` (or, without it, ``If-Modified-Since``) still matches gets ``304 Not
Modified``. ``DemoSite.change_products`` revises products between crawls (new price and
description, so new validators on their pages and listings), for tests of incremental recrawls.
"""

from __future__ import annotations

import collections
import signal
import sys
import threading
import time
from email.utils import format_datetime, parsedate_to_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from crawler.demo.catalog import (
    PRODUCT_COUNT,
    build_catalog,
)
from crawler.demo.pages import BREAKABLE_FIELDS
from crawler.demo.routes import route

if TYPE_CHECKING:
    from collections.abc import Iterable
    from email.message import Message
    from types import FrameType, TracebackType

    from crawler.demo.pages import Page


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        site = self.server.site
        url = urlsplit(self.path)
        site.count_hit(url.path, self.headers)
        host = escape(self.headers.get("Host") or site.netloc)
        page = route(
            url.path, parse_qs(url.query), host, site.slow_seconds, site.revisions,
            site.broken_fields,
        )  # fmt: skip
        api = site.api_delay if url.path.startswith("/js/api/") else 0.0
        delay = max(page.delay, api, site.page_delay)
        if delay:
            time.sleep(delay)
        validators = _validators(page)
        if validators and not_modified(self.headers, page):
            site.count_not_modified(url.path)
            self.send_response(304)
            for name, value in validators.items():
                self.send_header(name, value)
            self.end_headers()
            return
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        self.send_header("Content-Length", str(len(page.body)))
        for name, value in {**page.headers, **validators}.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(page.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and crawls print their own output


def _validators(page: Page) -> dict[str, str]:
    if page.status != 200 or not page.is_html:
        return {}
    return {"ETag": page.etag, "Last-Modified": format_datetime(page.last_modified, usegmt=True)}


def not_modified(headers: Message, page: Page) -> bool:
    """RFC 9110 §13.2.2: ``If-None-Match`` decides when present, else ``If-Modified-Since``."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or page.etag in tags
    since = headers.get("If-Modified-Since")
    if not since:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # an invalid date is ignored
    return when.tzinfo is not None and page.last_modified <= when


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections when a crawler opens 100 at once
    # (they hang until the client's SYN retries and time out); real servers accept far more.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], site: DemoSite) -> None:
        super().__init__(address, _Handler)
        self.site = site

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer is normal for crawlers with timeouts; bugs still show.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class DemoSite:
    """The demo shop on ``host:port`` (0: a free port), served from a daemon thread.

    ``changed_ids``: products revised once from the start (like ``change_products``).
    ``broken_fields``: product fields served with changed markup (``BREAKABLE_FIELDS``: rating,
    description, in_stock), so that the products spider finds nothing for them. What the
    site was asked: ``hits`` (requests per path), ``not_modified`` (304 answers per path) and
    ``request_headers`` (the last request's headers per path).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        slow_seconds: float = 1.0,
        changed_ids: Iterable[int] = (),
        api_delay: float = 0.0,
        page_delay: float = 0.0,
        broken_fields: Iterable[str] = (),
    ) -> None:
        self.host, self.port, self.slow_seconds = host, port, slow_seconds
        self.broken_fields = frozenset(broken_fields)  # see break_fields; may be set while serving
        self.api_delay = api_delay  # seconds every JSON answer of the JavaScript shop waits
        self.page_delay = page_delay  # seconds every answer waits at least (a distant server)
        self.hits: collections.Counter[str] = collections.Counter()
        self.not_modified: collections.Counter[str] = collections.Counter()
        self.request_headers: dict[str, dict[str, str]] = {}
        self.revisions: dict[int, int] = {}  # product id -> times changed; replaced, not mutated
        self._lock = threading.Lock()
        self.change_products(changed_ids)
        if unknown := sorted(self.broken_fields - set(BREAKABLE_FIELDS)):
            known = ", ".join(BREAKABLE_FIELDS)
            raise ValueError(f"cannot break field {unknown[0]!r} (breakable: {known})")
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}/"

    def count_hit(self, path: str, headers: Message | None = None) -> None:
        with self._lock:
            self.hits[path] += 1
            if headers is not None:
                self.request_headers[path] = dict(headers.items())

    def count_not_modified(self, path: str) -> None:
        with self._lock:
            self.not_modified[path] += 1

    def change_products(self, ids: Iterable[int]) -> None:
        """Revise these products once more: 5% dearer, a note in the description, new ETag and
        Last-Modified on their pages and listing pages (see ``crawler.demo.pages.revised``)."""
        ids = list(ids)
        if bad := [i for i in ids if not 1 <= i <= PRODUCT_COUNT]:
            raise ValueError(f"no product {bad[0]} (ids are 1 to {PRODUCT_COUNT})")
        with self._lock:
            revisions = dict(self.revisions)
            for pid in ids:
                revisions[pid] = revisions.get(pid, 0) + 1
            self.revisions = revisions  # one swap: a request sees the old or the new state

    def start(self) -> DemoSite:
        build_catalog()  # generate before the first request, not during it
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DemoSite:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def product_ids(text: str) -> list[int]:
    """``"5,17,99"`` -> ``[5, 17, 99]`` (for ``serve --change``); ``ValueError`` when malformed."""
    ids = [int(part) for part in text.split(",") if part.strip()]
    if bad := [i for i in ids if not 1 <= i <= PRODUCT_COUNT]:
        raise ValueError(f"no product {bad[0]} (ids are 1 to {PRODUCT_COUNT})")
    return ids


def serve_forever(
    host: str,
    port: int,
    slow_seconds: float,
    changed_ids: Iterable[int] = (),
    broken_fields: Iterable[str] = (),
) -> None:
    """Serve, print ``Demo site at URL`` and block until SIGINT or SIGTERM."""
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with DemoSite(host, port, slow_seconds, changed_ids, broken_fields=broken_fields) as site:
        print(f"Demo site at {site.url}", flush=True)
        while not stopped.wait(0.2):
            pass
