"""Helpers of the report tests: a store with a run made by hand, and a look at a report in
headless Chromium (console errors, network requests, a screenshot checked for content)."""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import image
from scrapy.settings import Settings

from crawler.rendering.browser import launch_options
from crawler.stats import COVERAGE_OTHER, FETCH_KINDS, HOSTS, LATENCY_MS, RunCounts
from crawler.storage import open_store
from crawler.storage.schema import transaction

FIELDS = ("name", "price", "sku", "description")


def add_run(
    db: Path,
    *,
    spider: str = "products",
    arguments: dict[str, Any] | None = None,
    items: int = 100,
    price_filled: int | None = None,
    finished: bool = True,
    exit_status: int = 0,
    failure: str | None = None,
    extras: bool = True,
) -> int:
    """A run row with samples (two workers), coverage, rejects and failed pages, as a crawl
    with the issue's components would leave it; ``extras`` False: the run row alone."""
    store = open_store(db)
    try:
        run_id = store.start_run(
            spider, arguments=arguments or {"start_url": "http://shop.test/"}, profile="fast",
            settings={},
        )  # fmt: skip
        stats = {
            "response_received_count": items + 5,
            "item_scraped_count": items,
            "downloader/response_status_count/200": items + 2,
            "downloader/response_status_count/404": 2,
            "downloader/response_status_count/503": 1,
            LATENCY_MS: {"50": items, "100": 3, "200": 1, "500": 0, "inf": 1},
            HOSTS: {
                "shop.test": {"pages": items, "errors": 3, "bytes": 1000 * items},
                "cdn.<b>evil</b>.test": {"pages": 5, "errors": 0, "bytes": 500},
            },
            FETCH_KINDS: {"http": items, "browser": 5},
        }
        if extras:
            _extras(store.conn, run_id, items, items if price_filled is None else price_filled)
        if finished:
            store.finish_run(
                run_id, reason="finished", counts=RunCounts(items + 5, items, 3, 0, 3),
                exit_status=exit_status, stats=stats, failure=failure,
            )  # fmt: skip
        return run_id
    finally:
        store.close()


def _extras(conn: sqlite3.Connection, run_id: int, items: int, price: int) -> None:
    with transaction(conn):
        for worker in (0, 1):
            conn.executemany(
                "INSERT INTO run_samples (run_id, worker, at, elapsed, pages, items, errors,"
                " rejects, bytes, in_flight, queued, rendered)"
                " VALUES (?, ?, '2026-12-01T00:00:00+00:00', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (run_id, worker, t * 5.0, t * items // 40, t * items // 40, t // 4, t // 8,
                     t * 1000, 4, max(0, 100 - t * 5), t // 10)
                    for t in range(21)
                ],
            )  # fmt: skip
            for name in FIELDS:
                filled = price // 2 if name == "price" else items // 2
                conn.execute(
                    "INSERT INTO field_coverage VALUES (?, ?, 'products', ?, ?, ?)",
                    (run_id, worker, name, filled, items // 2),
                )
            conn.execute(
                "INSERT INTO field_coverage VALUES (?, ?, 'products', ?, 7, ?)",
                (run_id, worker, COVERAGE_OTHER, items // 2),
            )
        conn.executemany(
            "INSERT INTO rejects (run_id, item_type, item, reason, url, snapshot)"
            " VALUES (?, 'ProductItem', '{}', ?, ?, ?)",
            [
                (run_id, "price: missing", "http://shop.test/p/1", f"run-{run_id}/0001-rej.html"),
                (run_id, "price: missing", "http://shop.test/p/2", None),
                (run_id, "<script>alert(1)</script> $x$", "http://shop.test/p/3", None),
            ],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO failed_pages (run_id, url, host, status, error, snapshot)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (run_id, "http://shop.test/gone", "shop.test", 404, "http_404",
                 f"run-{run_id}/0002-http_404.html"),
                (run_id, "http://shop.test/gone2", "shop.test", 404, "http_404", None),
                (run_id, "http://down.test/", "down.test", None, "TimeoutError", None),
            ],
        )  # fmt: skip


@dataclass
class Look:
    """What a report looked like in Chromium."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    headings: list[str] = field(default_factory=list)
    svgs: int = 0
    colours: int = 0  # distinct colours in the screenshot
    inked: float = 0.0  # share of pixels that are not the background


def look_at(report: Path, screenshot: Path) -> Look:
    """Open ``report`` in headless Chromium with every request routed through a check, take a
    full-page screenshot to ``screenshot`` and measure it. Runs in a thread of its own: the
    sync Playwright API wants a thread without an asyncio loop."""
    result: list[Look | BaseException] = []
    thread = threading.Thread(target=_look, args=(report, screenshot, result), daemon=True)
    thread.start()
    thread.join(90)
    assert result, "Chromium did not finish within 90 s"
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _look(report: Path, screenshot: Path, result: list[Look | BaseException]) -> None:
    from playwright.sync_api import sync_playwright

    look = Look()
    try:
        options = launch_options(Settings())
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(**options)
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                page.on(
                    "console",
                    lambda m: look.console_errors.append(m.text) if m.type == "error" else None,
                )
                page.on("pageerror", lambda e: look.console_errors.append(str(e)))
                url = report.resolve().as_uri()

                def route(route: Any) -> None:
                    look.requests.append(route.request.url)
                    if route.request.url == url:
                        route.continue_()
                    else:
                        route.abort()

                page.route("**/*", route)
                page.goto(url, wait_until="load")
                look.headings = [h.strip() for h in page.locator("h1, h2, h3").all_inner_texts()]
                look.svgs = page.locator("svg").count()
                page.screenshot(path=str(screenshot), full_page=True)
            finally:
                browser.close()
        pixels = image.imread(str(screenshot))[..., :3]
        flat = (pixels * 255).astype(np.uint8).reshape(-1, 3)
        look.colours = len(np.unique(flat, axis=0))
        background = np.array([0xF7, 0xFA, 0xFC], dtype=np.uint8)
        look.inked = float(np.mean(np.any(np.abs(flat.astype(int) - background) > 8, axis=1)))
        result.append(look)
    except BaseException as exc:  # handed to the test thread
        result.append(exc)


EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:|//)""", re.IGNORECASE)


def external_references(text: str) -> list[str]:
    """``src``/``href`` values with a scheme (``http:``, ``data:``…) or ``//``: any would reach
    out (or embed) beyond the file and its relative snapshot links."""
    return EXTERNAL.findall(text) + re.findall(r"url\(\s*['\"]?\s*(?:https?:|//)", text)
