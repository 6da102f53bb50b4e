"""``StrictHttpCompressionMiddleware``: Scrapy's decompression, but a cut-short stream is an error.

Scrapy's decoders return whatever a truncated gzip, deflate, br or zstd body yields, so a server
that sends half a compressed page with a matching ``Content-Length`` produces an incomplete page
without any error. Here every decoder must reach the end of its stream: if it does not (or the
stream is corrupt), the request is retried like any data loss (``RETRY_TIMES``) and then fails
with ``ResponseDataLossError``, which the spiders record as a fetch error. Size limits
(``DOWNLOAD_MAXSIZE``, decompression bombs) work as in Scrapy.

Settings: ``COMPRESSION_ENABLED`` (Scrapy's switch), ``COMPRESSION_STRICT`` (off: Scrapy's
lenient decoding). Responses already marked partial on purpose (``download_stopped``, or
``dataloss`` when ``DOWNLOAD_FAIL_ON_DATALOSS`` is off) are decoded leniently.
Stats: ``compression/truncated``.
"""

from __future__ import annotations

import logging
import sys
import zlib
from io import BytesIO
from typing import TYPE_CHECKING, Any

from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import ResponseDataLossError
from scrapy.utils._compression import _DecompressionMaxSizeExceeded

from crawler import defaults

try:
    import brotli
except ImportError:  # pragma: no cover - Scrapy needs one of the two
    import brotlicffi as brotli

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_ON_PURPOSE = frozenset({"download_stopped", "dataloss"})


class _Incomplete(ValueError):
    """A compressed stream that ends early or is corrupt."""


class _Output:
    """Decompressed bytes, refusing to grow past ``max_size`` (0: no limit)."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.buffer = BytesIO()
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_size and self.size > self.max_size:
            raise _DecompressionMaxSizeExceeded(self.size, self.max_size)
        self.buffer.write(chunk)


def _drain_zlib(decoder: Any, data: bytes, out: _Output) -> None:
    chunk = decoder.decompress(data, _CHUNK)
    while True:
        out.add(chunk)
        if decoder.eof or (not chunk and not decoder.unconsumed_tail):
            return
        chunk = decoder.decompress(decoder.unconsumed_tail, _CHUNK)


def gunzip_complete(body: bytes, max_size: int = 0) -> bytes:
    """The content of a gzip body (all members); ``_Incomplete`` if it ends early."""
    out, data = _Output(max_size), body
    while True:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            _drain_zlib(decoder, data, out)
        except zlib.error as exc:
            raise _Incomplete(f"corrupt gzip stream: {exc}") from exc
        if not decoder.eof:
            raise _Incomplete(f"gzip stream cut short after {len(body)} bytes")
        data = decoder.unused_data
        if not data.startswith(b"\x1f\x8b"):  # trailing bytes that start no member: ignored
            return out.buffer.getvalue()


def inflate_complete(body: bytes, max_size: int = 0) -> bytes:
    """The content of a deflate body (zlib-wrapped or raw); ``_Incomplete`` if it ends early."""
    for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):
        out, decoder = _Output(max_size), zlib.decompressobj(wbits)
        try:
            _drain_zlib(decoder, body, out)
        except zlib.error as exc:
            if wbits < 0:
                raise _Incomplete(f"corrupt deflate stream: {exc}") from exc
            continue  # some servers send raw deflate
        if not decoder.eof:
            raise _Incomplete(f"deflate stream cut short after {len(body)} bytes")
        return out.buffer.getvalue()
    raise AssertionError("unreachable")  # pragma: no cover


def unbrotli_complete(body: bytes, max_size: int = 0) -> bytes:
    """The content of a brotli body; ``_Incomplete`` if it ends early."""
    out, decoder = _Output(max_size), brotli.Decompressor()
    try:
        chunk = decoder.process(body, output_buffer_limit=_CHUNK)
        while True:
            out.add(chunk)
            if decoder.is_finished():
                return out.buffer.getvalue()
            chunk = decoder.process(b"", output_buffer_limit=_CHUNK)
            if not chunk:
                raise _Incomplete(f"brotli stream cut short after {len(body)} bytes")
    except brotli.error as exc:
        raise _Incomplete(f"corrupt brotli stream: {exc}") from exc


def unzstd_complete(body: bytes, max_size: int = 0) -> bytes:
    """The content of a zstd body (all frames); ``_Incomplete`` if it ends early."""
    out, data = _Output(max_size), body
    try:
        while True:
            decoder = zstd.ZstdDecompressor()
            chunk = decoder.decompress(data, _CHUNK)
            while True:
                out.add(chunk)
                if decoder.eof or decoder.needs_input:
                    break
                chunk = decoder.decompress(b"", _CHUNK)
            if not decoder.eof:
                raise _Incomplete(f"zstd stream cut short after {len(body)} bytes")
            data = decoder.unused_data
            if not data:
                return out.buffer.getvalue()
    except zstd.ZstdError as exc:
        raise _Incomplete(f"corrupt zstd stream: {exc}") from exc


_DECODERS = {
    b"gzip": gunzip_complete,
    b"x-gzip": gunzip_complete,
    b"deflate": inflate_complete,
    b"br": unbrotli_complete,
    b"zstd": unzstd_complete,
}


class StrictHttpCompressionMiddleware(HttpCompressionMiddleware):
    """Decompresses like Scrapy's middleware; a truncated or corrupt stream is data loss."""

    def __init__(
        self, stats: StatsCollector | None = None, *, crawler: Crawler | None = None
    ) -> None:
        super().__init__(stats, crawler=crawler)
        assert crawler is not None
        self.crawler = crawler
        self.strict = crawler.settings.getbool("COMPRESSION_STRICT", defaults.COMPRESSION_STRICT)
        self._lenient = False

    def process_response(self, request: Request, response: Response) -> Request | Response:  # type: ignore[override]
        self._lenient = not self.strict or bool(_ON_PURPOSE & set(response.flags))
        try:
            return super().process_response(request, response)
        except _Incomplete as exc:
            return self._retry(request, response, str(exc))

    def _decode(self, body: bytes, encoding: bytes, max_size: int) -> bytes:  # type: ignore[override]
        if self._lenient:
            return HttpCompressionMiddleware._decode(body, encoding, max_size)
        return _DECODERS[encoding](body, max_size)

    def _retry(self, request: Request, response: Response, problem: str) -> Request:
        assert self.crawler.spider is not None
        self.crawler.stats.inc_value("compression/truncated")
        message = f"{problem} ({response.status} {response.url})"
        retry = get_retry_request(
            request,
            spider=self.crawler.spider,
            reason="incomplete compressed body",
            logger=logger,
        )
        if retry is None:
            raise ResponseDataLossError(message)
        logger.info(f"retrying: {message}")
        return retry
