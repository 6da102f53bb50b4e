"""JavaScript rendering: config, discovery, detector, learning (no browser), then real Chromium.

The crawls run `scrapy crawl` against the demo shop's `/js/` section on 127.0.0.1 with Debian's
Chromium (`make test` installs it).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from parsel import Selector
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse, Request, Response, TextResponse
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from crawler.demo.catalog import build_catalog
from crawler.demo.jspages import JS_BATCH, JS_EVERY, js_route, listing_products, moved_id
from crawler.demo.server import DemoSite
from crawler.exceptions import ArgumentError
from crawler.middlewares.render import AUTO_STATE, RenderMiddleware
from crawler.pageinfo import fetched_with
from crawler.rendering import detector
from crawler.rendering.addon import HANDLER, PLAYWRIGHT_ERROR, RenderAddon
from crawler.rendering.browser import BrowserNotFoundError, check_browser, launch_options
from crawler.rendering.config import RenderConfig, render_mode
from crawler.rendering.contexts import ContextRotation
from crawler.rendering.memory import (
    BROWSER_NEEDED,
    BROWSER_USELESS,
    HTTP_OK,
    FetcherMemory,
    url_pattern,
)
from crawler.spiders.products import ProductsSpider
from tests.support import CrawlResult, run_crawl_in, scrapy_env

CHROMIUM = Path("/usr/bin/chromium")

# ---------------------------------------------------------------- configuration and discovery

# one browser at a time: with parallel test workers, the browser tests share one worker
pytestmark = pytest.mark.xdist_group("browser")


def test_render_mode_argument() -> None:
    assert [render_mode(t) for t in ("never", " Always", "AUTO")] == ["never", "always", "auto"]
    with pytest.raises(ValueError, match="never, always, auto"):
        render_mode("sometimes")
    with pytest.raises(ArgumentError, match="invalid argument render='sometimes'"):
        ProductsSpider.parse_arguments({"start_url": "http://127.0.0.1/", "render": "sometimes"})


def test_config_from_settings() -> None:
    default = RenderConfig.from_settings(Settings())
    assert (default.mode, default.enabled) == ("never", False)
    assert default.block_resources == {"image", "font", "media"}
    config = RenderConfig.from_settings(
        Settings(
            {
                "RENDER_MODE": "auto",
                "RENDER_BLOCK_RESOURCES": "image,stylesheet",
                "RENDER_CONTEXT_MAX_PAGES": "5",
                "RENDER_WAIT_FOR": " div.ready ",
            }
        )
    )
    assert (config.mode, config.enabled, config.context_max_pages) == ("auto", True, 5)
    assert (config.block_resources, config.wait_for) == ({"image", "stylesheet"}, "div.ready")
    assert RenderConfig.from_settings(Settings({"RENDER_ENABLED": True})).enabled
    with pytest.raises(ValueError):
        RenderConfig.from_settings(Settings({"RENDER_MODE": "maybe"}))


def test_render_argument_sets_the_mode_before_addons_run() -> None:
    crawler = Crawler(ProductsSpider, Settings({"RENDER_MODE": "never"}))
    ProductsSpider.from_crawler(crawler, start_url="http://127.0.0.1:1/", render="auto")
    assert crawler.settings["RENDER_MODE"] == "auto"


def test_browser_discovery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    options = launch_options(
        Settings({"PLAYWRIGHT_LAUNCH_OPTIONS": {"args": ["--foo"]}}), [str(fake)]
    )
    assert options["executable_path"] == str(fake) and options["headless"] is True
    assert options["args"][0] == "--foo" and "--no-sandbox" in options["args"]
    assert "--disable-background-networking" in options["args"]
    missing = Settings({"PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": str(tmp_path / "nope")}})
    with pytest.raises(BrowserNotFoundError, match="apt-get install chromium"):
        launch_options(missing)
    with pytest.raises(BrowserNotFoundError) as found:
        launch_options(Settings(), [str(tmp_path / "nope")])
    assert "\n" not in str(found.value) and "apt-get install chromium" in str(found.value)
    check_browser(missing)  # never renders: no browser needed
    with pytest.raises(BrowserNotFoundError):
        check_browser(missing, "auto")
    remote = launch_options(Settings({"PLAYWRIGHT_CDP_URL": "http://127.0.0.1:9"}), [])
    assert "executable_path" not in remote


def test_addon_installs_playwright_only_when_rendering(tmp_path: Path) -> None:
    handlers = {"file": None, "http": None}
    off = Settings({"DOWNLOAD_HANDLERS": handlers})
    RenderAddon().update_settings(off)
    assert off.getdict("DOWNLOAD_HANDLERS") == handlers
    assert not off.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")
    on = Settings({"RENDER_MODE": "auto", "DOWNLOAD_HANDLERS": handlers, "DOWNLOAD_TIMEOUT": 7})
    if not CHROMIUM.exists():
        on.set("PLAYWRIGHT_LAUNCH_OPTIONS", {"executable_path": sys.executable})
    RenderAddon().update_settings(on)
    assert on.getdict("DOWNLOAD_HANDLERS") == {"file": None, "http": HANDLER, "https": HANDLER}
    assert on.getfloat("PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT") == 7000
    assert PLAYWRIGHT_ERROR in on.getlist("RETRY_EXCEPTIONS")
    assert on.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")["executable_path"]


# ------------------------------------------------------------------------------ the detector


def html(body: str, url: str = "http://shop.test/p/1", status: int = 200) -> HtmlResponse:
    text = f"<!DOCTYPE html><html><head><title>t</title></head><body>{body}</body></html>"
    return HtmlResponse(url, status=status, body=text.encode(), encoding="utf-8")


WORDS = " ".join(["word"] * 30)


@pytest.mark.parametrize(
    ("body", "required", "reason"),
    [
        (f"<p>{WORDS}</p>", None, None),  # no script: nothing could change the page
        ("<div id='root'></div>", None, None),
        (f"<p>{WORDS}</p><script>x()</script>", None, None),
        ("<div id='root'></div><script src='/app.js'></script>", None, detector.SHELL),
        (f"<p>{WORDS}</p><div id='app'></div><script>x()</script>", None, detector.SHELL),
        (
            "<div id='__next'><p>hi</p></div><script id='__NEXT_DATA__'>{}</script>",
            None,
            detector.SHELL,
        ),
        (
            f"<p>{WORDS}</p><noscript>You need to enable JavaScript to run this app.</noscript>"
            "<script>x()</script>",
            None,
            detector.NOSCRIPT,
        ),
        ("<p>Redirecting</p><script>location.replace('/x')</script>", None, detector.EMPTY),
        (f"<p>{WORDS}</p><script>x()</script>", "div.price", detector.REQUIRED_MISSING),
        ("<div class='price'>1</div><script>x()</script>", "div.price", None),
    ],
)
def test_detector(body: str, required: str | None, reason: str | None) -> None:
    assert detector.needs_browser(html(body), required, min_words=20) == reason


def test_detector_ignores_errors_and_non_html() -> None:
    shell = "<div id='root'></div><script src='/app.js'></script>"
    assert detector.needs_browser(html(shell, status=404), None, 20) is None
    text = TextResponse("http://shop.test/x.json", body=b"{}", encoding="utf-8")
    assert detector.needs_browser(text, None, 20) is None
    assert detector.rendering_helped(html("<div class='p'>1</div>"), "div.p", 0)
    assert not detector.rendering_helped(html("<p>a b</p>"), None, http_words=2)
    assert detector.rendering_helped(html("<p>a b c</p>"), None, http_words=2)


# ------------------------------------------------------------------------- learning memory


def test_url_patterns() -> None:
    assert url_pattern("http://Shop.test:8080/products/123?x=1") == "shop.test:8080/products/*"
    assert url_pattern("http://shop.test/catalog/lighting/") == "shop.test/catalog/*/"
    assert url_pattern("http://shop.test/about") == "shop.test/about"
    assert url_pattern("http://shop.test/item-42") == "shop.test/*"
    assert url_pattern("http://shop.test/") == "shop.test/"


def test_memory_learns_browser_patterns_and_rechecks() -> None:
    memory = FetcherMemory(learn_after=3, recheck_every=4)
    pattern = "shop.test/p/*"
    for _ in range(2):
        memory.record(pattern, BROWSER_NEEDED)
    assert not memory.go_direct(pattern)  # 2 < learn_after
    memory.record(pattern, BROWSER_NEEDED)
    assert [memory.go_direct(pattern) for _ in range(8)] == [True, True, True, False] * 2


def test_memory_keeps_http_first_for_mixed_patterns() -> None:
    memory = FetcherMemory(learn_after=3, recheck_every=20)
    for n in range(1, 101):
        memory.record("mixed/*", BROWSER_NEEDED if n % 10 == 0 else HTTP_OK)
    assert not memory.go_direct("mixed/*")
    for _ in range(3):
        memory.record("useless/*", BROWSER_USELESS)
    assert not memory.go_direct("useless/*")


def test_context_rotation_and_page_reuse() -> None:
    rotation: ContextRotation[str] = ContextRotation(max_pages=3)
    assert rotation.assign() == "render-0"
    assert rotation.finish("render-0", "a") == ([], False)  # "a" kept for the next navigation
    assert rotation.assign() == "render-0" and rotation.take_idle("render-0") == "a"
    assert rotation.assign() == "render-0" and rotation.take_idle("render-0") is None  # new "b"
    assert rotation.current == "render-1"  # render-0 served 3 navigations: retired
    assert rotation.assign() == "render-1"
    assert rotation.finish("render-0", "b") == (["b"], False)  # retired: no reuse; "a" busy
    assert rotation.finish("render-0", "a") == (["a"], True)  # last one: close the context
    assert rotation.finish("render-1", None) == ([], False)  # its page was closed (an error)
    assert rotation.finish("render-9", "z") == (["z"], False)  # unknown context: just close
    assert rotation.assign() == "render-1"
    rotation.finish("render-1", "c")
    assert rotation.drain() == ["c"] and rotation.take_idle("render-1") is None
    rotation.forget()
    assert rotation.assign() == "render-2" and rotation.busy == {"render-2": 1}
    assert rotation.owns(None) and rotation.owns("render-9") and not rotation.owns("mine")


# ---------------------------------------------------------------------- the middleware alone


def middleware(**settings: Any) -> RenderMiddleware:
    return RenderMiddleware.from_crawler(get_crawler(settings_dict=settings))


def test_middleware_is_off_unless_rendering() -> None:
    with pytest.raises(NotConfigured):
        middleware(RENDER_MODE="never")


def test_middleware_always_never_and_meta_switch() -> None:
    always = middleware(RENDER_MODE="always")
    pages = [Request(u) for u in ("http://s.test/a", "http://s.test/robots.txt")]
    forced_off = Request("http://s.test/b", meta={"render": False})
    for request in [*pages, forced_off]:
        always.process_request(request)
    assert [r.meta.get("playwright") for r in (*pages, forced_off)] == [True, None, None]
    auto = middleware(RENDER_MODE="auto")
    forced_on = Request("http://s.test/c", meta={"render": "always"})
    own = Request("http://s.test/d", meta={"playwright": False})
    auto.process_request(forced_on)
    auto.process_request(own)
    assert forced_on.meta["playwright"] is True and own.meta == {"playwright": False}


def http_response(request: Request, body: str) -> Response:
    return html(body, url=request.url).replace(request=request)


def test_middleware_auto_escalates_and_learns() -> None:
    mw = middleware(RENDER_MODE="auto", RENDER_LEARN_AFTER=2)
    shell = "<div id='root'></div><script src='/app.js'></script>"
    results = []
    for n in range(1, 5):
        request = Request(f"http://s.test/p/{n}")
        mw.process_request(request)
        if request.meta.get("playwright"):
            results.append("direct")
            continue
        escalated = mw.process_response(request, http_response(request, shell))
        assert isinstance(escalated, Request) and escalated.meta["playwright"] is True
        assert escalated.dont_filter and escalated.meta[AUTO_STATE] == "escalated"
        rendered = HtmlResponse(
            escalated.url, body=f"<p>{WORDS}</p>".encode(), flags=["playwright"]
        ).replace(request=escalated)
        assert mw.process_response(escalated, rendered) is rendered
        results.append("escalated")
    assert results == ["escalated", "escalated", "direct", "direct"]
    plain = Request("http://s.test/about")
    mw.process_request(plain)
    response = http_response(plain, f"<p>{WORDS}</p>")
    assert mw.process_response(plain, response) is response
    stats = mw.crawler.stats
    assert stats is not None
    assert stats.get_value("render/escalated") == 2
    assert stats.get_value("render/escalated/framework_shell") == 2
    assert stats.get_value("render/direct_browser") == 2
    assert stats.get_value("render/http_only") == 1


def test_middleware_escalates_every_page_that_looks_empty() -> None:
    """Rendering ``host/*`` pages did not help 20 times: a shell of that pattern still goes."""
    mw = middleware(RENDER_MODE="auto", RENDER_LEARN_AFTER=2)
    short = "<h1>Static</h1><script src='/site.js'></script>"
    for n in range(20):
        request = Request(f"http://s.test/s{n}.html")
        mw.process_request(request)
        escalated = mw.process_response(request, http_response(request, short))
        assert isinstance(escalated, Request)
        same = HtmlResponse(escalated.url, body=short.encode(), flags=["playwright"])
        mw.process_response(escalated, same.replace(request=escalated))
    app = Request("http://s.test/app3.html")
    mw.process_request(app)
    assert "playwright" not in app.meta
    shell = "<div id='app'></div><script>fill()</script>"
    escalated = mw.process_response(app, http_response(app, shell))
    assert isinstance(escalated, Request) and escalated.meta["playwright"] is True
    stats = mw.crawler.stats
    assert stats is not None
    assert (stats.get_value("render/escalated"), stats.get_value("render/browser_useless")) == (
        21, 20
    )  # fmt: skip


def test_fetched_with() -> None:
    assert fetched_with(html("")) == "http"
    assert fetched_with(HtmlResponse("http://s.test/", body=b"", flags=["playwright"])) == "browser"


# --------------------------------------------------------------------------- demo JS pages


def test_demo_js_pages() -> None:
    shell = js_route("/js/products/5", {}, "shop.test").body.decode()
    product = build_catalog().products[4]
    assert product.name not in shell and "/js/api/products/5" in shell
    data = json.loads(js_route("/js/api/products/5", {}, "shop.test").body)
    assert (data["sku"], data["name"]) == (product.sku, product.name)
    first = json.loads(js_route("/js/api/catalog/lighting", {"offset": ["0"]}, "h").body)
    assert first["next"] == 3 and first["cards"][0]["href"] == f"/js/moved/{moved_id()}"
    assert len(listing_products("lighting")) == 6 and not listing_products("bath")
    assert "location.replace" in js_route("/js/moved/7", {}, "h").body.decode()
    plain, js = js_route("/js/mixed/11", {}, "h"), js_route(f"/js/mixed/{JS_EVERY}", {}, "h")
    assert Selector(body=plain.body).css(".sku-value") and b"<script" not in plain.body
    assert not Selector(body=js.body).css(".sku-value") and b'id="root"' in js.body
    assert js_route("/js/hang/1", {}, "h").delay >= 60
    assert js_route("/js/products/0", {}, "h").status == 404


# ------------------------------------------------------------------ real Chromium, real crawls


@pytest.fixture(scope="module")
def chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")


def stats_of(result: CrawlResult) -> dict[str, Any]:
    (run,) = result.rows("SELECT stats FROM runs")
    stats: dict[str, Any] = json.loads(run["stats"])
    return stats


def dumped(result: CrawlResult, key: str) -> int:
    """A counter from the final stats dump: set as the spider closes, after the run is stored."""
    values = re.findall(rf"'{re.escape(key)}': (\d+)", result.stderr)
    assert values, f"{key} not in the stats dump"
    return int(values[-1])


def assert_no_page_left_open(result: CrawlResult) -> None:
    opened = dumped(result, "playwright/page_count")
    assert dumped(result, "playwright/page_count/closed") == opened
    assert dumped(result, "render/open_pages_at_close") == 0


def js_skus() -> set[str]:
    catalog = build_catalog()
    return {p.sku for c in catalog.categories[:2] for p in listing_products(c.slug)}


@pytest.fixture(scope="module")
def always(chromium: None, demo_site: DemoSite, tmp_path_factory: Any, crawl_in: Any) -> Any:
    return crawl_in(
        tmp_path_factory.mktemp("always"), "products", "-a", f"start_url={demo_site.url}js/",
        "-a", "render=always", "-s", "RENDER_CONTEXT_MAX_PAGES=4",
    )  # fmt: skip


@pytest.mark.timeout(150)
def test_load_more_waits_for_a_slow_answer(chromium: None, tmp_path: Path) -> None:
    """Each "Load more" answer takes longer than the quiet time after a click: the button stays
    disabled meanwhile, and the next click waits for it, so no batch behind it is lost."""
    with DemoSite(slow_seconds=0.3, api_delay=0.8) as site:
        result = run_crawl_in(
            tmp_path, "products", "-a", f"start_url={site.url}js/", "-a", "render=always"
        )
        hits = dict(site.hits)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["sku"] for r in result.rows("SELECT sku FROM products")}
    assert rows == js_skus()
    for category in build_catalog().categories[:2]:  # every batch of every listing was asked for
        batches = -(-len(listing_products(category.slug)) // JS_BATCH)
        assert hits.get(f"/js/api/catalog/{category.slug}") == batches, hits


@pytest.mark.timeout(150)
def test_render_always_extracts_js_only_content(always: CrawlResult) -> None:
    assert always.returncode == 0, always.stderr[-3000:]
    rows = {r["sku"]: r for r in always.rows("SELECT * FROM products")}
    assert set(rows) == js_skus()  # behind "load more", and the JS redirect (moved_id)
    catalog = {p.sku: p for p in build_catalog().products}
    for sku, row in rows.items():
        product = catalog[sku]
        assert (row["name"], row["currency"], row["rating"]) == (
            product.name, product.currency, product.rating
        )  # fmt: skip
        assert row["fetched_with"] == "browser"
        assert row["url"].endswith(f"/js/products/{product.id}")
    stats = stats_of(always)
    assert stats["render/forced"] == 15  # index, 2 listings, 12 products
    # pages are reused within a context: no more pages than navigations, every one closed
    assert_no_page_left_open(always)
    assert dumped(always, "playwright/page_count") <= 15
    assert stats["playwright/context_count"] >= 4 and stats["render/contexts_recycled"] >= 3
    assert stats.get("playwright/request_count/aborted", 0) > 0  # product images


@pytest.mark.timeout(150)
def test_render_never_sees_only_the_shells(
    chromium: None, demo_site: DemoSite, run_crawl: Any
) -> None:
    result = run_crawl("products", "-a", f"start_url={demo_site.url}js/")
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = result.rows("SELECT items, finish_reason FROM runs")
    assert (run["items"], run["finish_reason"]) == (0, "finished")  # the listings are empty
    stats = stats_of(result)
    assert not [k for k in stats if k.startswith(("playwright/", "render/"))]
    assert "scrapy-playwright" not in result.stderr


@pytest.mark.timeout(150)
def test_render_auto_escalates_and_learns(
    chromium: None, demo_site: DemoSite, run_crawl: Any
) -> None:
    result = run_crawl(
        "products", "-a", f"start_url={demo_site.url}js/", "-a", "render=auto",
        "-s", "CONCURRENT_REQUESTS=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = result.rows("SELECT sku, fetched_with FROM products")
    assert {r["sku"] for r in rows} == js_skus()
    assert {r["fetched_with"] for r in rows} == {"browser"}
    stats = stats_of(result)
    assert stats["render/http_only"] == 1  # the index: plain HTML
    assert stats["render/escalated/framework_shell"] == 2  # the listings
    assert stats["render/escalated/required_selector"] >= 3  # products, until learnt
    assert stats["render/direct_browser"] >= 3  # later products: straight to the browser
    assert stats["render/escalated"] + stats["render/direct_browser"] == 14
    assert_no_page_left_open(result)
    assert dumped(result, "playwright/page_count") <= 14


@pytest.mark.timeout(150)
def test_render_auto_renders_only_pages_that_need_it(
    chromium: None, demo_site: DemoSite, run_crawl: Any, tmp_path: Path
) -> None:
    base = demo_site.url
    plain = [base, f"{base}about", f"{base}products/3", f"{base}js/", f"{base}js/mixed/11"]
    needs_js = [f"{base}js/products/5", f"{base}js/moved/7", f"{base}js/mixed/{JS_EVERY}"]
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(plain + needs_js), encoding="utf-8")
    result = run_crawl("pages", "-a", f"urls={urls}", "-a", "render=auto")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["url"]: r for r in result.rows("SELECT * FROM pages")}
    assert {u for u, r in rows.items() if r["fetched_with"] == "browser"} == set(needs_js)
    products = build_catalog().products
    assert rows[f"{base}js/products/5"]["title"] == f"{products[4].name} | Demo Shop"
    moved = rows[f"{base}js/moved/7"]
    assert (moved["final_url"], moved["h1"]) == (f"{base}js/products/7", products[6].name)
    stats = stats_of(result)
    assert (stats["render/escalated"], stats["render/http_only"]) == (3, 5)


@pytest.mark.timeout(150)
def test_navigation_timeouts_fail_alone_and_leave_no_page_open(
    chromium: None, demo_site: DemoSite, run_crawl: Any, tmp_path: Path
) -> None:
    base = demo_site.url
    hanging = [f"{base}js/hang/{n}" for n in range(6)]  # 3x the page limit below
    good = [f"{base}js/products/3", f"{base}about", f"{base}js/products/4"]
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(hanging + good), encoding="utf-8")
    result = run_crawl(
        "pages", "-a", f"urls={urls}", "-a", "render=always",
        "-s", "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT=2", "-s", "PLAYWRIGHT_MAX_CONTEXTS=1",
        "-s", "DOWNLOAD_TIMEOUT=1", "-s", "RETRY_TIMES=1", "-s", "HEALTH_MAX_ERROR_RATIO=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["url"]: r for r in result.rows("SELECT * FROM pages")}
    assert len(rows) == 9
    for url in hanging:
        assert rows[url]["status"] is None
        assert rows[url]["error"] == "TimeoutError: Page.goto: Timeout 1000ms exceeded."
    assert all(rows[u]["status"] == 200 and rows[u]["fetched_with"] == "browser" for u in good)
    (run,) = result.rows("SELECT finish_reason, errors FROM runs")
    assert (run["finish_reason"], run["errors"]) == ("finished", 6)
    stats = stats_of(result)
    assert stats["retry/reason_count/playwright._impl._errors.TimeoutError"] == 6
    # a page that failed is closed, never reused: 12 for the timeouts, at most 3 for the rest
    assert_no_page_left_open(result)
    assert 12 <= dumped(result, "playwright/page_count") <= 15
    assert stats["playwright/page_count/max_concurrent"] <= 2


def chromium_processes(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if "chrom" in p.name()]


@pytest.mark.timeout(150)
def test_a_killed_browser_is_relaunched(
    chromium: None, fresh_demo_site: DemoSite, tmp_path: Path
) -> None:
    site = fresh_demo_site
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(f"{site.url}js/products/{n}" for n in range(1, 31)), "utf-8")
    command = [
        sys.executable, "-m", "scrapy", "crawl", "pages", "-a", f"urls={urls}",
        "-a", "render=always", "-s", f"SQLITE_PATH={tmp_path / 'db.sqlite'}",
        "-s", f"CSV_EXPORT_DIR={tmp_path / 'out'}", "-s", "CRAWL_PROFILE=fast",
        "-s", "CONCURRENT_REQUESTS=2", "-s", "PLAYWRIGHT_MAX_CONTEXTS=1", "-s", "RETRY_TIMES=3",
        "-s", "RENDER_WAIT_FOR=div.product .sku-value",
    ]  # fmt: skip
    with subprocess.Popen(
        command, cwd=tmp_path, env=scrapy_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    ) as crawl:  # fmt: skip
        rendered = lambda: sum(n for p, n in site.hits.items() if p.startswith("/js/api/"))  # noqa: E731
        deadline = time.monotonic() + 90
        while rendered() < 5 and crawl.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        victims = chromium_processes(crawl.pid)
        assert victims and rendered() < 25, "the crawl must still be running"
        for process in victims:
            process.kill()
        at_kill = rendered()
        stdout, stderr = crawl.communicate(timeout=120)
    result = CrawlResult(crawl.returncode, stdout, stderr, tmp_path / "db.sqlite", tmp_path)
    assert result.returncode == 0, stderr[-3000:]
    rows = result.rows("SELECT * FROM pages")
    assert len(rows) == 30
    assert all(r["status"] == 200 and r["title"] != "Loading… | Demo Shop" for r in rows)
    assert rendered() > at_kill  # pages rendered by the relaunched browser
    stats = stats_of(result)
    assert stats["playwright/browser_count"] >= 2 and stats["render/browser_disconnected"] >= 1


@pytest.mark.timeout(60)
def test_missing_browser_is_a_one_line_error(demo_site: DemoSite, run_crawl: Any) -> None:
    options = json.dumps({"executable_path": "/nonexistent/chromium"})
    result = run_crawl(
        "pages", "-a", f"url={demo_site.url}", "-a", "render=always",
        "-s", f"PLAYWRIGHT_LAUNCH_OPTIONS={options}",
    )  # fmt: skip
    assert result.returncode != 0
    assert re.search(r"rendering needs Chromium.*apt-get install chromium", result.stderr)


class MixedSite:
    """90 short static pages (``/s12.html``: a few words and a site script) and 10 pages whose
    content a script writes (``/app3.html``), all of one path pattern (``host/*``)."""

    STATIC, APPS = 90, 10

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.static = [f"{self.base}/s{n}.html" for n in range(self.STATIC)]
        self.apps = [f"{self.base}/app{n}.html" for n in range(self.APPS)]

    @staticmethod
    def page(path: str) -> bytes | None:
        if path == "/site.js":
            return b"/* analytics */"
        if match := re.fullmatch(r"/s(\d+)\.html", path):
            head = f"<title>s{match[1]}</title><script src='/site.js'></script>"
            body = f"<h1>Static page {match[1]}</h1><p>Nothing more.</p>"
        elif match := re.fullmatch(r"/app(\d+)\.html", path):
            text = json.dumps(f"<h1>App page {match[1]}</h1><p>{WORDS}</p>")
            head = f"<title>app{match[1]}</title>"
            body = f"<div id='app'></div><script>app.innerHTML = {text};</script>"
        else:
            return None
        return f"<html><head>{head}</head><body>{body}</body></html>".encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        page = self.page

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = page(self.path)
                self.send_response(404 if body is None else 200)
                kind = "application/javascript" if self.path.endswith(".js") else "text/html"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> MixedSite:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def mixed_site() -> Iterator[MixedSite]:
    with MixedSite() as site:
        yield site


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_render_auto_renders_every_js_page_of_a_mixed_pattern(
    chromium: None, mixed_site: MixedSite, tmp_path: Path, crawl_in: Any, seed: int
) -> None:
    """U5: what ``auto`` learnt about ``host/*`` from the static pages never keeps a JS page
    from being rendered, whatever order the pages come in."""
    urls = mixed_site.static + mixed_site.apps
    random.Random(seed).shuffle(urls)
    (tmp_path / "urls.txt").write_text("\n".join(urls), encoding="utf-8")
    result = crawl_in(
        tmp_path, "pages", "-a", f"urls={tmp_path / 'urls.txt'}", "-a", "render=auto",
        "-s", "CONCURRENT_REQUESTS=8", "-s", "RENDER_WAIT_TIMEOUT=0.3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["url"]: r for r in result.rows("SELECT url, status, h1, fetched_with FROM pages")}
    assert len(rows) == 100 and {r["status"] for r in rows.values()} == {200}
    apps = {url: (rows[url]["fetched_with"], rows[url]["h1"]) for url in mixed_site.apps}
    assert apps == {url: ("browser", f"App page {n}") for n, url in enumerate(mixed_site.apps)}
    assert all(rows[url]["h1"].startswith("Static page") for url in mixed_site.static)
