"""`scrapy seed SPIDER FILE`: a URL file into a crawl's Redis frontier, as the workers read it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from scrapy import Request

from crawler.frontier import seeding
from crawler.frontier.codec import decode, encode
from crawler.frontier.jobs import job_key
from crawler.frontier.redisconn import RedisKeys
from crawler.frontier.seeding import RequestTemplate, Seeder, url_fingerprint
from crawler.meta import SEED
from crawler.seeds import BadSeed, validate_url
from crawler.spiders.pages import PagesSpider
from crawler.spiders.products import ProductsSpider
from tests.redisserver import RedisServer
from tests.support import scrapy_here

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(60)

SHOP = "http://shop.test/"


def seed(capsys: Any, server: RedisServer, *args: str, cwd: Path) -> Any:
    return scrapy_here(capsys, "seed", *args, "-s", f"REDIS_URL={server.url}", cwd=cwd)


def products_prefix() -> str:
    arguments = ProductsSpider.parse_arguments({"start_url": SHOP})
    return f"crawler:products:{job_key('products', arguments)}"


def test_seed_round_trip(capsys: Any, redis_server: RedisServer, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "# products of the shop\n"
        "http://shop.test/products/1\n"
        "ftp://shop.test/file\n"
        "\n"
        "http://shop.test/products/2\n"
        "http://shop.test/products/1\n"
        "not a url\n"
        "http://shop.test/products/3?b=2&a=1\n"
        "http://shop.test/products/3?a=1&b=2\n",
        encoding="utf-8",
    )
    done = seed(
        capsys, redis_server, "products", str(urls), "-a", f"start_url={SHOP}",
        "-c", "parse_product", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"{urls}:3: skipped invalid URL 'ftp://shop.test/file':" + (
        " scheme 'ftp' not allowed (only http and https)"
    )
    assert lines[1].startswith(f"{urls}:7: skipped invalid URL 'not a url': ")
    assert lines[2].startswith("seeded: 3 queued, 2 duplicates, 2 rejected lines in ")

    client = redis_server.client()
    prefix = products_prefix()
    queued = client.zrange(f"{prefix}:queue", 0, -1)
    requests = client.hgetall(f"{prefix}:requests")
    assert set(queued) == set(requests) == set(client.hgetall(f"{prefix}:seen"))
    assert client.hvals(f"{prefix}:seen") == ["queued"] * 3
    spider = ProductsSpider(start_url=SHOP)
    decoded = [decode(requests[fp], spider) for fp in queued]  # in queue order: file order
    assert [r.url for r in decoded] == [
        "http://shop.test/products/1",
        "http://shop.test/products/2",
        "http://shop.test/products/3?b=2&a=1",
    ]
    assert all(r.callback == spider.parse_product and r.meta == {SEED: True} for r in decoded)
    assert client.hget(f"{prefix}:meta", "seeded_at")
    assert client.hget(f"{prefix}:meta", "state") == "open"

    again = seed(
        capsys, redis_server, "products", str(urls), "-a", f"start_url={SHOP}", cwd=tmp_path
    )
    assert "seeded: 0 queued, 5 duplicates, 2 rejected lines" in again.stderr


def test_seed_request_is_the_codec_json() -> None:
    """The template's JSON is exactly ``codec.encode`` of the request, and its fingerprint
    Scrapy's default one."""
    from scrapy.utils.request import fingerprint

    spider = ProductsSpider(start_url=SHOP)
    template = RequestTemplate.for_spider(spider, "parse_product")
    for url in ("http://a.test/x?q=%C3%A9&b=1", 'http://b.test/"quoted"', "https://c.test/é"):
        request = Request(url, callback=spider.parse_product, meta={SEED: True})
        assert template.json(request.url) == encode(request, spider)[0]
        assert url_fingerprint(request.url) == fingerprint(request).hex()
        assert Request(validate_url(url)).url == validate_url(url)  # seeded as validated


def test_seed_pages_as_its_start_would(
    capsys: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    """A spider's ``seed_request`` (``pages``: the seed in cb_kwargs, its errback, dont_filter)."""
    urls = tmp_path / "urls.txt"
    urls.write_text("http://a.test/1\nhttps://b.test/é?x=1\n", encoding="utf-8")
    done = seed(capsys, redis_server, "pages", str(urls), "-a", f"urls={urls}", "-a", "min_age=1h",
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    spider = PagesSpider(urls=str(urls), min_age="1h")
    prefix = f"crawler:pages:{job_key('pages', spider.arguments)}"
    client = redis_server.client()
    queued = client.zrange(f"{prefix}:queue", 0, -1)
    texts = [client.hget(f"{prefix}:requests", fp) for fp in queued]
    seeds = ("http://a.test/1", "https://b.test/%C3%A9?x=1")
    assert texts == [encode(spider.seed_request(url), spider)[0] for url in seeds]
    request = decode(texts[0], spider)
    assert (request.callback, request.errback) == (spider.parse, spider.on_error)
    assert request.cb_kwargs == {"seed": "http://a.test/1"} and request.dont_filter


def test_seed_errors_are_one_line(
    capsys: Any,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    missing = seed(capsys, redis_server, "pages", str(tmp_path / "nope.txt"), cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error: ")
    assert len(missing.stderr.strip().splitlines()) == 1
    urls = tmp_path / "u.txt"
    urls.write_text("http://a.test/\n", encoding="utf-8")
    callback = seed(capsys, redis_server, "products", str(urls), "-a", f"start_url={SHOP}",
                    "-c", "nope", cwd=tmp_path)  # fmt: skip
    assert callback.returncode == 2
    assert callback.stderr.strip() == "error: spider 'products' has no method 'nope' to call back"
    pages = seed(capsys, redis_server, "pages", str(urls), "-a", f"urls={urls}", "-c", "parse",
                 cwd=tmp_path)  # fmt: skip
    assert pages.returncode == 2
    assert pages.stderr.strip() == (
        "error: pages.parse needs seed besides the response, which a seeded request cannot"
        " give: name another method with -c"
    )
    down = scrapy_here(capsys, "seed", "products", str(urls), "-a", f"start_url={SHOP}",
                       "-s", "REDIS_URL=redis://127.0.0.1:1/0", cwd=tmp_path)  # fmt: skip
    assert down.returncode == 2
    assert down.stderr.strip().startswith("error: Redis at redis://127.0.0.1:1/0 unreachable")


def test_seed_in_a_pool_of_processes(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a long file takes: chunks checked and written by two processes, reported in order."""
    monkeypatch.setattr(seeding, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(seeding, "BATCH", 7)  # many chunks, repeats across them
    urls = tmp_path / "urls.txt"
    lines = [f"http://shop.test/p/{n % 40}" for n in range(60)] + ["bad line"]
    urls.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spider = ProductsSpider(start_url=SHOP)
    keys = RedisKeys("crawler", "products", "pool")
    bad: list[BadSeed] = []
    seeder = Seeder(redis_server.client(), keys, RequestTemplate.for_spider(spider, "parse"),
                    processes=2, on_bad=bad.append)  # fmt: skip
    report = seeder.seed(str(urls))
    assert (report.queued, report.duplicates, report.rejected) == (40, 20, 1)
    assert [b.source for b in bad] == [f"{urls}:61"]
    client = redis_server.client()
    assert client.zcard(keys.queue) == client.hlen(keys.requests) == 40
    assert client.hget(keys.meta, "seq") == "40"
