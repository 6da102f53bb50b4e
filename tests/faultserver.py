"""One fault server for the network tests: an endpoint per fault, on 127.0.0.1 only.

``FaultServer`` answers raw HTTP/1.1 from asyncio in a daemon thread (byte-level control: lies
about lengths, broken chunking, resets, stalls). It listens on one port per *origin*: ``main``
plus one per robots.txt variant (robots.txt is per origin). Every request is logged with its
origin, target and time, so tests check hits and timing on the server side.

Endpoints (any origin): ``/page[?sleep=S]``, ``/private/…``, ``/never``, ``/stall``, ``/short``,
``/chunked``, ``/reset``, ``/flaky?fail=N``, ``/throttle?times=N&after=S[&date=1]``,
``/redirect?to=URL``, ``/loop``, ``/chain?n=N``, ``/meta-loop``, ``/calendar?d=DATE``,
``/counter?n=N``, ``/a/a/…``, ``/long?n=N``, ``/advertised``, ``/endless``,
``/bomb?enc=gzip|deflate|br|zstd|nested``, ``/gzip?cut=1``, ``/text?kind=…``,
``/hostile?kind=deep|text|links[&n=N]``, ``/xml/laughs.xml``, ``/xml/external.xml``,
``/status?code=N[&size=BYTES][&cookie=VALUE]`` (a page with that status, BYTES of padding, and
a ``Set-Cookie`` header).
Per-URL counters (``/flaky``, ``/throttle``) count by the whole target: add ``&key=…`` to make a
URL of a test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import brotli
from backports import zstd

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

MiB = 1024 * 1024
ROBOTS = {
    "main": b"User-agent: *\nDisallow: /private\n",
    "disallow": b"User-agent: *\nDisallow: /\n",
    "redirect-target": b"User-agent: *\nDisallow: /private\n",
    "delay": b"User-agent: *\nCrawl-delay: 2\n",
    "recover": b"User-agent: *\nDisallow: /private\n",
}
ORIGINS = (
    "main",
    "disallow",
    "missing",
    "error",
    "timeout",
    "huge",
    "redirect",
    "delay",
    "recover",
)


@dataclass(frozen=True)
class Hit:
    origin: str
    target: str  # path and query, as sent
    path: str
    time: float  # time.monotonic() when the request head arrived


@dataclass
class Req:
    origin: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    host: str  # the Host header: how the client named us


def page(title: str, body: str = "", head: str = "") -> bytes:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>{head}"
        f"</head><body><h1>{title}</h1><p>Some words on a page about {title}.</p>{body}"
        "</body></html>"
    ).encode()


@cache
def bomb(encoding: str) -> bytes:
    """About 50 KB (or less) that inflate to 50 MiB of zeros."""
    zeros = bytes(50 * MiB)
    if encoding == "gzip":
        return gzip.compress(zeros, 9)
    if encoding == "deflate":
        return zlib.compress(zeros, 9)
    if encoding == "br":
        return brotli.compress(zeros, quality=5)
    if encoding == "zstd":
        return bytes(zstd.compress(zeros, 3))
    return gzip.compress(bomb("gzip"), 9)  # nested: gzip, gzip


@cache
def hostile(kind: str, links: int = 1_000_000) -> bytes:
    if kind == "deep":
        return b"<html><body>" + b"<div>" * 100_000 + b"deep" + b"</div>" * 100_000 + b"</body>"
    if kind == "text":
        return page("Huge text", "<p>" + "word " * 2_000_000 + "</p>")  # one 10 MB text node
    anchors = "".join(f"<a href=/page?i={i}>{i}</a>" for i in range(links))
    return page(f"{links} links", anchors)


TEXTS: dict[str, tuple[str, bytes]] = {
    # (Content-Type, body)
    "latin1-as-utf8": ("text/html; charset=utf-8", page("Café crème").decode().encode("latin-1")),
    "utf8-as-latin1": ("text/html; charset=iso-8859-1", page("Café crème")),
    "nul": ("text/html; charset=utf-8", page("Nul\x00byte title", "<p>a\x00b</p>")),
    "surrogate": (
        "text/html; charset=utf-8",
        page("Lone surrogate").replace(b"Lone", b"Lone \xed\xa0\x80"),
    ),
    "unknown": ("text/html; charset=x-no-such-charset", page("Unknown charset")),
    "control": ("text/html; charset=utf-8", page("Tab\tand\x0bvertical\x1bescape")),
}


class FaultServer:
    """Serves the faults on 127.0.0.1, one port per origin (see the module docstring)."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}
        self.log: list[Hit] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.secret_file = "/etc/hostname"  # what /xml/external.xml's entity points at
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._routes: dict[str, Callable[[Req, asyncio.StreamWriter], Awaitable[None]]] = {
            "/robots.txt": self._robots,
            "/robots-real.txt": self._robots_real,
            "/never": self._never,
            "/stall": self._stall,
            "/short": self._short,
            "/chunked": self._chunked,
            "/reset": self._reset,
            "/flaky": self._flaky,
            "/throttle": self._throttle,
            "/redirect": self._redirect,
            "/loop": self._loop_redirect,
            "/chain": self._chain,
            "/meta-loop": self._meta_loop,
            "/calendar": self._calendar,
            "/counter": self._counter,
            "/long": self._long,
            "/advertised": self._advertised,
            "/endless": self._endless,
            "/bomb": self._bomb,
            "/gzip": self._gzip,
            "/text": self._text,
            "/hostile": self._hostile,
            "/xml/laughs.xml": self._laughs,
            "/xml/external.xml": self._external,
            "/status": self._status,
        }

    # -- control ----------------------------------------------------------------------------

    def __enter__(self) -> FaultServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        for origin in ORIGINS:
            server = await asyncio.start_server(
                lambda r, w, o=origin: self._connection(o, r, w), "127.0.0.1", 0, limit=MiB
            )
            self._servers.append(server)
            self.ports[origin] = server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def url(self, target: str, origin: str = "main", host: str = "127.0.0.1") -> str:
        """``host`` may be ``localhost``: a second host name (another slot) for the same server."""
        return f"http://{host}:{self.ports[origin]}{target}"

    def hits(
        self, path: str | None = None, origin: str | None = "main", prefix: str | None = None
    ) -> list[Hit]:
        with self._lock:
            return [
                h
                for h in self.log
                if (origin is None or h.origin == origin)
                and (path is None or h.path == path)
                and (prefix is None or h.target.startswith(prefix))
            ]

    def _count(self, req: Req) -> int:
        with self._lock:
            self.counts[(req.origin, req.target)] += 1
            return self.counts[(req.origin, req.target)]

    # -- HTTP plumbing ------------------------------------------------------------------------

    async def _connection(
        self, origin: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            req = self._parse(origin, head)
            with self._lock:
                self.log.append(Hit(origin, req.target, req.path, time.monotonic()))
            handler = self._routes.get(req.path)
            if handler is None:
                handler = self._deeper if req.path.startswith("/a/") else self._page
            await handler(req, writer)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # the server is stopping: end quietly (asyncio reports cancelled handlers)
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    def _parse(origin: str, head: bytes) -> Req:
        line, *rest = head.decode("latin-1").split("\r\n")
        target = line.split(" ")[1]
        headers = {}
        for header in rest:
            name, sep, value = header.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query))
        return Req(origin, target, parts.path, query, headers, headers.get("host", ""))

    @staticmethod
    def _head(status: int, headers: dict[str, Any], length: int | None) -> bytes:
        reason = {200: "OK", 301: "Moved", 302: "Found", 404: "Not Found", 429: "Too Many"}.get(
            status, "Status"
        )
        lines = [f"HTTP/1.1 {status} {reason}", "Connection: close"]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        body: bytes,
        status: int = 200,
        ctype: str = "text/html; charset=utf-8",
        **headers: Any,
    ) -> None:
        headers = {"Content-Type": ctype, **{k.replace("_", "-"): v for k, v in headers.items()}}
        writer.write(self._head(status, headers, len(body)) + body)
        await writer.drain()

    async def _forever(self) -> None:
        await asyncio.sleep(3600)

    # -- endpoints ----------------------------------------------------------------------------

    async def _page(self, req: Req, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(float(req.query.get("sleep", "0")))
        await self._send(w, page(req.query.get("title") or f"Page {req.target}"))

    async def _status(self, req: Req, w: asyncio.StreamWriter) -> None:
        code = int(req.query.get("code", "500"))
        body = page(f"Status {code}", "x" * int(req.query.get("size", "0")))
        cookie = {"Set_Cookie": req.query["cookie"]} if "cookie" in req.query else {}
        await self._send(w, body, code, **cookie)

    async def _robots(self, req: Req, w: asyncio.StreamWriter) -> None:
        origin = req.origin
        if origin == "missing":
            await self._send(w, b"no robots here", 404, "text/plain")
        elif origin == "error" or (origin == "recover" and self._count(req) == 1):
            await self._send(w, b"overloaded", 503, "text/plain")
        elif origin == "timeout":
            await self._forever()
        elif origin == "redirect":
            await self._send(w, b"", 301, Location="/robots-real.txt")
        elif origin == "huge":
            filler = b"# a comment line that pads this robots.txt\n" * (6 * MiB // 44)
            body = b"User-agent: *\nDisallow: /private\n" + filler + b"Disallow: /late\n"
            await self._send(w, body, ctype="text/plain")
        else:
            body = ROBOTS[origin]
            if origin == "main":
                base = f"http://{req.host}"
                body += (
                    f"Sitemap: {base}/xml/laughs.xml\nSitemap: {base}/xml/external.xml\n".encode()
                )
            await self._send(w, body, ctype="text/plain")

    async def _robots_real(self, req: Req, w: asyncio.StreamWriter) -> None:
        await self._send(w, ROBOTS["redirect-target"], ctype="text/plain")

    async def _never(self, req: Req, w: asyncio.StreamWriter) -> None:
        await self._forever()

    async def _stall(self, req: Req, w: asyncio.StreamWriter) -> None:
        w.write(self._head(200, {"Content-Type": "text/html"}, 10_000) + b"<html><head>")
        await w.drain()
        await self._forever()

    async def _short(self, req: Req, w: asyncio.StreamWriter) -> None:
        w.write(self._head(200, {"Content-Type": "text/html"}, 10_000) + page("Short")[:100])

    async def _chunked(self, req: Req, w: asyncio.StreamWriter) -> None:
        headers = {"Content-Type": "text/html", "Transfer-Encoding": "chunked"}
        w.write(self._head(200, headers, None))
        for chunk in (b"<html><head><title>Chunked", b"</title></head><body>part"):
            w.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        # no terminating 0-length chunk: the connection just closes

    async def _reset(self, req: Req, w: asyncio.StreamWriter) -> None:
        w.write(self._head(200, {"Content-Type": "text/html"}, 100_000) + b"x" * 5000)
        await w.drain()
        await asyncio.sleep(0.05)
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()  # with SO_LINGER 0: an RST, not a FIN

    async def _flaky(self, req: Req, w: asyncio.StreamWriter) -> None:
        if self._count(req) <= int(req.query.get("fail", "2")):
            await self._send(w, b"busy", 503, "text/plain")
        else:
            await self._page(req, w)

    async def _throttle(self, req: Req, w: asyncio.StreamWriter) -> None:
        if self._count(req) > int(req.query.get("times", "1")):
            await self._page(req, w)
            return
        after = int(req.query.get("after", "3"))
        value = formatdate(time.time() + after, usegmt=True) if req.query.get("date") else after
        await self._send(w, b"slow down", 429, "text/plain", Retry_After=value)

    async def _redirect(self, req: Req, w: asyncio.StreamWriter) -> None:
        await self._send(w, b"", 302, Location=req.query.get("to", "/page"))

    async def _loop_redirect(self, req: Req, w: asyncio.StreamWriter) -> None:
        await self._send(w, b"", 302, Location=req.target)

    async def _chain(self, req: Req, w: asyncio.StreamWriter) -> None:
        hops = int(req.query.get("n", "50"))
        if hops <= 0:
            await self._page(req, w)
        else:
            await self._send(w, b"", 302, Location=f"/chain?n={hops - 1}")

    async def _meta_loop(self, req: Req, w: asyncio.StreamWriter) -> None:
        refresh = f'<meta http-equiv="refresh" content="0;url={req.target}">'
        await self._send(w, page("Meta loop", head=refresh))

    async def _calendar(self, req: Req, w: asyncio.StreamWriter) -> None:
        day = int(req.query.get("d", "0"))
        links = "".join(f'<a href="/calendar?d={d}">day {d}</a>' for d in (day - 1, day + 1))
        await self._send(w, page(f"Day {day}", links))

    async def _counter(self, req: Req, w: asyncio.StreamWriter) -> None:
        n = int(req.query.get("n", "0"))
        await self._send(w, page(f"Counter {n}", f'<a href="/counter?n={n + 1}">next</a>'))

    async def _deeper(self, req: Req, w: asyncio.StreamWriter) -> None:
        await self._send(w, page(f"Depth {req.path.count('a/')}", f'<a href="{req.path}a/">on</a>'))

    async def _long(self, req: Req, w: asyncio.StreamWriter) -> None:
        n = int(req.query.get("n", "0"))
        pad = "x" * 10_000
        await self._send(w, page(f"Long {n}", f'<a href="/long?n={n + 1}&pad={pad}">next</a>'))

    async def _advertised(self, req: Req, w: asyncio.StreamWriter) -> None:
        w.write(self._head(200, {"Content-Type": "text/html"}, 64 * MiB))
        for _ in range(64 * 16):
            w.write(bytes(64 * 1024))
            await w.drain()

    async def _endless(self, req: Req, w: asyncio.StreamWriter) -> None:
        w.write(self._head(200, {"Content-Type": "text/html"}, None) + b"<html><body>")
        for _ in range(16 * 1024):  # stops at 1 GiB whatever happens
            w.write(b"<p>endless</p>" * 4681)
            await w.drain()

    async def _bomb(self, req: Req, w: asyncio.StreamWriter) -> None:
        encoding = req.query.get("enc", "gzip")
        header = "gzip, gzip" if encoding == "nested" else encoding
        await self._send(w, bomb(encoding), Content_Encoding=header)

    async def _gzip(self, req: Req, w: asyncio.StreamWriter) -> None:
        words = " ".join(f"word{i}" for i in range(20_000))
        body = gzip.compress(page("Gzipped", f"<p>{words}</p>"))
        if req.query.get("cut"):
            body = body[: len(body) // 2]  # Content-Length says exactly this: no HTTP error
        await self._send(w, body, Content_Encoding="gzip")

    async def _text(self, req: Req, w: asyncio.StreamWriter) -> None:
        ctype, body = TEXTS[req.query.get("kind", "nul")]
        await self._send(w, body, ctype=ctype)

    async def _hostile(self, req: Req, w: asyncio.StreamWriter) -> None:
        kind, links = req.query.get("kind", "deep"), int(req.query.get("n", "1000000"))
        await self._send(w, hostile(kind, links))

    async def _laughs(self, req: Req, w: asyncio.StreamWriter) -> None:
        entities = '<!ENTITY lol "lol">' + "".join(
            f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
            for i in range(1, 10)
        )
        body = (
            f'<?xml version="1.0"?><!DOCTYPE urlset [{entities}]>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<url><loc>http://{req.host}/page?laughs=&lol9;</loc></url></urlset>"
        )
        await self._send(w, body.encode(), ctype="application/xml")

    async def _external(self, req: Req, w: asyncio.StreamWriter) -> None:
        body = (
            f'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file://{self.secret_file}">]>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<url><loc>http://{req.host}/page?leak=&xxe;</loc></url>"
            f"<url><loc>http://{req.host}/page?from=sitemap</loc></url></urlset>"
        )
        await self._send(w, body.encode(), ctype="application/xml")
