"""The demo shop over HTTP/1.1 (stdlib ``ThreadingHTTPServer``), on 127.0.0.1 by default.

``DemoSite`` serves it from a daemon thread (tests, ``python -m crawler.demo crawl``);
``serve_forever`` serves it until SIGINT/SIGTERM (``python -m crawler.demo serve``).
"""

from __future__ import annotations

import collections
import signal
import sys
import threading
import time
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from crawler.demo.catalog import (
    build_catalog,
)
from crawler.demo.pages import route

if TYPE_CHECKING:
    from types import FrameType, TracebackType


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
        site.count_hit(url.path)
        host = escape(self.headers.get("Host") or site.netloc)
        page = route(url.path, parse_qs(url.query), host, site.slow_seconds)
        if page.delay:
            time.sleep(page.delay)
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        self.send_header("Content-Length", str(len(page.body)))
        for name, value in page.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(page.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and crawls print their own output


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], site: DemoSite) -> None:
        super().__init__(address, _Handler)
        self.site = site

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer is normal for crawlers with timeouts; bugs still show.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class DemoSite:
    """The demo shop on ``host:port`` (0: a free port), served from a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, slow_seconds: float = 1.0) -> None:
        self.host, self.port, self.slow_seconds = host, port, slow_seconds
        self.hits: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}/"

    def count_hit(self, path: str) -> None:
        with self._lock:
            self.hits[path] += 1

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


def serve_forever(host: str, port: int, slow_seconds: float) -> None:
    """Serve, print ``Demo site at URL`` and block until SIGINT or SIGTERM."""
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with DemoSite(host, port, slow_seconds) as site:
        print(f"Demo site at {site.url}", flush=True)
        while not stopped.wait(0.2):
            pass
