"""StrictHttpCompressionMiddleware: complete streams decode, cut-short ones are data loss."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from typing import Any

import brotli
import pytest
from backports import zstd
from scrapy import Request, Spider
from scrapy.exceptions import IgnoreRequest, ResponseDataLossError
from scrapy.http import HtmlResponse, Response
from scrapy.utils.test import get_crawler

from crawler.middlewares.compression import (
    StrictHttpCompressionMiddleware,
    _Incomplete,
    gunzip_complete,
    inflate_complete,
    unbrotli_complete,
    unzstd_complete,
)

pytestmark = pytest.mark.timeout(30)

TEXT = b"<html><body>" + b"".join(b"<p>line %d</p>" % i for i in range(20_000)) + b"</body>"


def raw_deflate(data: bytes) -> bytes:
    encoder = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return encoder.compress(data) + encoder.flush()


CODECS: list[tuple[str, Callable[[bytes], bytes], Callable[..., bytes]]] = [
    ("gzip", gzip.compress, gunzip_complete),
    ("deflate", zlib.compress, inflate_complete),
    ("raw deflate", raw_deflate, inflate_complete),
    ("br", brotli.compress, unbrotli_complete),
    ("zstd", zstd.compress, unzstd_complete),
]


@pytest.mark.parametrize(("name", "encode", "decode"), CODECS)
def test_decoders_need_the_whole_stream(
    name: str, encode: Callable[[bytes], bytes], decode: Callable[..., bytes]
) -> None:
    body = encode(TEXT)
    assert decode(body) == TEXT
    for cut in (len(body) // 2, len(body) - 1, 4):
        with pytest.raises(_Incomplete):
            decode(body[:cut])


def test_several_gzip_members_and_zstd_frames_are_one_body() -> None:
    assert gunzip_complete(gzip.compress(b"ab") + gzip.compress(b"cd")) == b"abcd"
    assert unzstd_complete(zstd.compress(b"ab") + zstd.compress(b"cd")) == b"abcd"
    assert gunzip_complete(gzip.compress(b"ab") + b"\0\0\0") == b"ab"  # padding is ignored


def test_corrupt_stream() -> None:
    body = bytearray(gzip.compress(TEXT))
    body[len(body) // 2] ^= 0xFF
    with pytest.raises(_Incomplete, match="corrupt gzip"):
        gunzip_complete(bytes(body))


def make(**settings: Any) -> StrictHttpCompressionMiddleware:
    crawler = get_crawler(Spider, {"RETRY_TIMES": 1, **settings})
    crawler.spider = Spider.from_crawler(crawler, name="t")
    return StrictHttpCompressionMiddleware.from_crawler(crawler)


def gzipped(body: bytes, flags: list[str] | None = None) -> tuple[Request, Response]:
    request = Request("http://site.test/page")
    headers = {"Content-Encoding": "gzip", "Content-Type": "text/html"}
    return request, Response(request.url, body=body, headers=headers, flags=flags)


def test_a_truncated_body_is_retried_then_data_loss() -> None:
    mw = make()
    request, response = gzipped(gzip.compress(TEXT)[:2000])
    retry = mw.process_response(request, response)
    assert isinstance(retry, Request) and retry.meta["retry_times"] == 1
    with pytest.raises(ResponseDataLossError, match="gzip stream cut short"):
        mw.process_response(retry, response)
    stats = mw.crawler.stats
    assert stats.get_value("compression/truncated") == 2
    assert stats.get_value("retry/reason_count/incomplete compressed body") == 1


def test_complete_body_and_size_limit_as_in_scrapy() -> None:
    mw = make(DOWNLOAD_MAXSIZE=500_000)
    request, response = gzipped(gzip.compress(TEXT))
    decoded = mw.process_response(request, response)
    assert isinstance(decoded, HtmlResponse) and decoded.body == TEXT
    _, bomb = gzipped(gzip.compress(bytes(1_000_000)))
    with pytest.raises(IgnoreRequest, match="exceeded DOWNLOAD_MAXSIZE"):
        mw.process_response(request, bomb)


def test_partial_on_purpose_or_not_strict_is_lenient() -> None:
    partial = gzip.compress(TEXT)[:2000]
    request, stopped = gzipped(partial, flags=["download_stopped"])
    assert isinstance(make().process_response(request, stopped), HtmlResponse)
    _, response = gzipped(partial)
    lenient = make(COMPRESSION_STRICT=False).process_response(request, response)
    assert isinstance(lenient, HtmlResponse) and TEXT.startswith(lenient.body)
