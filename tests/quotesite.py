"""A small quotes site in the shape of the Scrapy tutorial's quotes.toscrape.com, on 127.0.0.1.

100 quotes on 10 pages (``/page/1/`` … ``/page/10/``), 10 per page, each with its text, author
and tags, and a "Next" link on every page but the last. The quotes are the same on every run.
"""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

PAGES = 10
PER_PAGE = 10
TAGS = ("life", "love", "humor", "books", "truth", "inspirational", "friendship")


def quotes() -> list[dict[str, Any]]:
    return [
        {
            "text": f'“Quote number {n}: a thing worth saying, with a comma, and a "quote".”',
            "author": f"Author {n % 17}",
            "tags": [TAGS[n % len(TAGS)], TAGS[(n * 3) % len(TAGS)]][: 1 + n % 2],
        }
        for n in range(PAGES * PER_PAGE)
    ]


def page(number: int) -> str:
    chunk = quotes()[(number - 1) * PER_PAGE : number * PER_PAGE]
    blocks = []
    for quote in chunk:
        tags = "".join(
            f'<a class="tag" href="/tag/{t}/">{html.escape(t)}</a>' for t in quote["tags"]
        )
        blocks.append(
            '<div class="quote">'
            f'<span class="text">{html.escape(quote["text"])}</span>'
            f'<small class="author">{html.escape(quote["author"])}</small>'
            f'<div class="tags">{tags}</div></div>'
        )
    nxt = f'<li class="next"><a href="/page/{number + 1}/">Next</a></li>' if number < PAGES else ""
    return f"<html><body>{''.join(blocks)}<ul class='pager'>{nxt}</ul></body></html>"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        parts = [p for p in self.path.split("/") if p]
        if self.path == "/robots.txt":
            body, status = "User-agent: *\nAllow: /\n", 200
        elif not parts:
            body, status = page(1), 200
        elif len(parts) == 2 and parts[0] == "page" and parts[1].isdigit():
            number = int(parts[1])
            body, status = (page(number), 200) if 1 <= number <= PAGES else ("none", 404)
        else:
            body, status = "not found", 404
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class QuoteSite:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> QuoteSite:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve() -> Iterator[QuoteSite]:
    with QuoteSite() as site:
        yield site
