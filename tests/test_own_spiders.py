"""Bring your own Scrapy spider: plain spiders, `scrapy fetch`/`shell`, `genspider`, run rows.

A plain ``scrapy.Spider`` (no base class of ours) crawls with the project's settings as it is:
its start URLs are the user's named targets, its links are not; only ``crawl`` and
``runspider`` record a run.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import scrapy

from tests.inprocess import crawl_spider_class
from tests.support import ROOT, run_contained, run_crawl_in, scrapy_env, scrapy_here
from tests.test_safety_crawl import LocalServer, page

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from crawler.demo.server import DemoSite

pytestmark = pytest.mark.timeout(120)
HINT = "set SAFETY_ALLOW_PRIVATE_TARGETS=True to allow private targets"


@pytest.fixture
def servers() -> Iterator[Callable[..., LocalServer]]:
    started: list[LocalServer] = []

    def start(routes: dict[str, Any] | None = None) -> LocalServer:
        started.append(LocalServer(routes or {}))
        return started[-1]

    yield start
    for server in started:
        server.close()


def scrapy_cmd(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_contained(
        [sys.executable, "-m", "scrapy", *args], cwd=cwd, env=scrapy_env(), timeout=90
    )


class PlainSpider(scrapy.Spider):
    """The tutorial's spider: nothing of ours, dicts as items, every link followed."""

    name = "plain"

    def parse(self, response: Any) -> Iterator[Any]:
        yield {"url": response.url, "title": response.css("title::text").get()}
        yield from response.follow_all(css="a", callback=self.parse)


class PlainStartSpider(PlainSpider):
    """The same with its own ``start()``, as Scrapy 2.13+ spiders write it."""

    name = "plain_start"
    first: str = ""

    async def start(self) -> AsyncIterator[Any]:
        yield scrapy.Request(self.first, callback=self.parse)


@pytest.mark.parametrize("base", [PlainSpider, PlainStartSpider])
def test_plain_spider_start_urls_are_named_targets_and_its_links_are_not(
    base: type[PlainSpider], tmp_path: Path, servers: Callable[..., LocalServer]
) -> None:
    other = servers({"/": page(), "/linked": page()})
    start = servers()
    start.routes.update({"/": page("/inside", other.url("/linked")), "/inside": page()})
    spidercls = type("Mine", (base,), {"start_urls": [start.url()], "first": start.url()})

    crawler, log = crawl_spider_class(tmp_path, spidercls)  # the project's settings, unchanged

    stats = crawler.stats.get_stats()
    assert {h.path for h in start.hits} >= {"/", "/inside"}
    assert stats["response_received_count"] >= 2
    assert other.hits == []  # a link to another loopback port stays blocked
    assert stats["safety/blocked_private"] == 1
    (blocked,) = {line for line in log.splitlines() if "WARNING: Blocked" in line}  # one line
    assert blocked.endswith(
        f"Blocked {other.url('/linked')}: 127.0.0.1 is loopback, not a named target; {HINT}"
    )


def test_fetch_prints_a_loopback_page(tmp_path: Path, servers: Callable[..., LocalServer]) -> None:
    server = servers({"/": (200, {}, "<html><body>hello from loopback</body></html>")})

    done = scrapy_cmd(tmp_path, "fetch", "--nolog", server.url())

    assert done.returncode == 0, done.stderr[-2000:]
    assert "hello from loopback" in done.stdout


def test_shell_fetches_its_url_as_a_named_target(
    tmp_path: Path, servers: Callable[..., LocalServer]
) -> None:
    server = servers({"/": (200, {}, "<html><title>shell page</title></html>")})

    done = scrapy_cmd(
        tmp_path, "shell", "--nolog", server.url(), "-c", "response.css('title::text').get()"
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "shell page"


def runs(db: Path) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT spider, finish_reason FROM runs").fetchall()


@pytest.mark.parametrize("command", ["fetch", "parse", "shell"])
def test_only_crawl_and_runspider_record_a_run(
    command: str, tmp_path: Path, demo_site: DemoSite
) -> None:
    db = tmp_path / "crawler.sqlite"
    product = f"{demo_site.url}/products/3"
    args = {
        "fetch": ["fetch", "--nolog", product],
        "parse": ["parse", "--nolog", "--spider", "products", "-a", f"start_url={demo_site.url}",
                  "-c", "parse_product", product],
        "shell": ["shell", "--nolog", product, "-c", "response.status"],
    }[command]  # fmt: skip

    done = scrapy_cmd(tmp_path, *args, "-s", f"SQLITE_PATH={db}")

    assert done.returncode == 0, done.stderr[-2000:]
    assert runs(db) == []


def test_crawl_records_its_run(tmp_path: Path, demo_site: DemoSite) -> None:
    result = run_crawl_in(tmp_path, "pages", "-a", f"url={demo_site.url}/about")

    assert result.returncode == 0, result.stderr[-2000:]
    assert runs(result.db) == [("pages", "finished")]


def test_genspider_makes_a_spider_that_crawls_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], servers: Callable[..., LocalServer]
) -> None:
    server = servers()
    server.routes.update(
        {
            "/": (200, {}, '<html><title>One</title><a rel="next" href="/2">next</a></html>'),
            "/2": (200, {}, "<html><title>Two</title><h1>Second</h1></html>"),
        }
    )
    project = tmp_path / "myproject"
    project.mkdir()

    made = scrapy_here(
        capsys, "genspider", "-s", "NEWSPIDER_MODULE=", "shop", server.url(), cwd=project
    )

    assert made.returncode == 0, made.stdout + made.stderr
    source = (project / "shop.py").read_text(encoding="utf-8")
    assert "start_urls" in source and "response.follow" in source
    spec = importlib.util.spec_from_file_location("generated_shop", project / "shop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    spidercls = module.ShopSpider
    assert spidercls.start_urls == [server.url()]

    crawler, log = crawl_spider_class(project, spidercls)

    stats = crawler.stats.get_stats()
    assert stats["finish_reason"] == "finished", log[-2000:]
    assert stats["item_scraped_count"] == 2, log[-2000:]
    assert {h.path for h in server.hits} >= {"/", "/2"}


PLAIN_SPIDER_FILE = """
import scrapy


class PlainSpider(scrapy.Spider):
    name = "plain"
    start_urls = ["{url}"]

    def parse(self, response):
        yield {{"url": response.url, "title": response.css("title::text").get()}}
"""


def test_runspider_records_its_run_and_reaches_its_loopback_start_url(
    tmp_path: Path, servers: Callable[..., LocalServer]
) -> None:
    server = servers({"/": (200, {}, "<html><title>mine</title></html>")})
    (tmp_path / "plain.py").write_text(PLAIN_SPIDER_FILE.format(url=server.url()))
    db = tmp_path / "crawler.sqlite"

    done = scrapy_cmd(tmp_path, "runspider", "plain.py", "-s", f"SQLITE_PATH={db}")

    assert done.returncode == 0, done.stderr[-2000:]
    assert [h.path for h in server.hits if h.path != "/robots.txt"] == ["/"]
    assert runs(db) == [("plain", "finished")]


def test_startproject_still_uses_scrapys_project_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TEMPLATES_DIR names the project's spider templates; a new project is Scrapy's own."""
    done = scrapy_here(capsys, "startproject", "newshop", cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "newshop" / "scrapy.cfg").is_file()
    assert (tmp_path / "newshop" / "newshop" / "settings.py").is_file()


PLAIN_FILE = """
import scrapy


class Plain(scrapy.Spider):
    name = "plain"
    start_urls = ["http://127.0.0.1:9/"]

    def parse(self, response):
        yield {"url": response.url}
"""


@pytest.mark.parametrize("name", ["item_schema", "custom_settings", "allowed_domains"])
def test_a_plain_spider_refuses_arguments_that_replace_its_configuration(
    tmp_path: Path, name: str
) -> None:
    """S4 for spiders without a base class of ours: Scrapy would set ``-a NAME=…`` as an
    attribute, so ``-a item_schema=/etc/passwd`` would make validation read that file."""
    spider_file = tmp_path / "plain.py"
    spider_file.write_text(PLAIN_FILE)
    done = run_contained(
        [sys.executable, "-m", "scrapy", "runspider", str(spider_file), "-a", f"{name}=x"],
        cwd=ROOT, env=scrapy_env(), timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: -a {name}=… would replace the spider's own {name!r}: not an argument"
    )
