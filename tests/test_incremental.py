"""Incremental recrawls against the demo shop: conditional requests, 304s, changes, min_age."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crawler.demo.catalog import (
    DISCONTINUED,
    FEATURED_IDS,
    PAGE_SIZE,
    PRODUCT_COUNT,
    REDIRECTED_ID,
    build_catalog,
)
from crawler.demo.pages import listing_cards, revised
from crawler.demo.server import DemoSite
from crawler.exceptions import ArgumentError
from crawler.items import PageItem, ProductItem
from crawler.spiders.pages import PagesSpider
from crawler.spiders.site import SiteSpider
from crawler.storage import open_store
from crawler.storage.fetchstate import FetchRecord, FetchState
from crawler.storage.schema import MIGRATIONS

# A recrawl yields few items by design: count the pages it found unchanged too.
HEALTH = "HEALTH_ITEM_STATS=item_scraped_count,incremental/not_modified,incremental/skipped_recent"
CHANGED_IDS = (7, 17, REDIRECTED_ID, 640)  # legacy cp1252 page, plain, redirected, plain
PRODUCT_PAGES = PRODUCT_COUNT + len(FEATURED_IDS)  # /products/N and /products/N?ref=featured
LISTING_PAGES = sum(-(-len(listing_cards(c)) // PAGE_SIZE) for c in build_catalog().categories)
NAVIGATION = 1 + 1 + LISTING_PAGES  # home, /catalog/, every listing page
MISSING = len(DISCONTINUED)  # 404s


@dataclass
class Run:
    returncode: int
    stderr: str
    stats: dict[str, Any]
    products: dict[str, dict[str, Any]]
    fetch_state: dict[str, dict[str, Any]]
    not_modified_answers: int  # 304s the demo site sent during the run
    product_hits: int  # requests for /products/… the demo site got during the run
    headers: dict[str, str]  # of the last request for /products/1


def snapshot(result: Any, site: DemoSite, before: tuple[int, int]) -> Run:
    with sqlite3.connect(result.db) as conn:
        conn.row_factory = sqlite3.Row
        products = {r["sku"]: dict(r) for r in conn.execute("SELECT * FROM products")}
        state = {r["url"]: dict(r) for r in conn.execute("SELECT * FROM fetch_state")}
        (stats,) = conn.execute("SELECT stats FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    answers, hits = counters(site)
    return Run(
        result.returncode, result.stderr, json.loads(stats), products, state,
        answers - before[0], hits - before[1], site.request_headers.get("/products/1", {}),
    )  # fmt: skip


def counters(site: DemoSite) -> tuple[int, int]:
    hits = sum(n for path, n in site.hits.items() if path.startswith("/products/"))
    return sum(site.not_modified.values()), hits


def counts(run: Run) -> dict[str, int]:
    names = ("new", "unchanged", "changed", "not_modified", "skipped_recent")
    return {name: run.stats.get(f"incremental/{name}", 0) for name in names}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, crawl_in: Any) -> dict[str, Run]:
    """Four `products` crawls of one store: first, unchanged, 4 products changed, min_age."""
    workdir = tmp_path_factory.mktemp("incremental")
    done: dict[str, Run] = {}
    with DemoSite(slow_seconds=0.05) as site:
        arguments = ["-a", f"start_url={site.url}", "-s", HEALTH]
        for name in ("first", "unchanged", "changed", "min_age"):
            if name == "changed":
                site.change_products(CHANGED_IDS)
            extra = ["-a", "min_age=1h"] if name == "min_age" else []
            before = counters(site)
            result = crawl_in(workdir, "products", *arguments, *extra, timeout=240)
            done[name] = snapshot(result, site, before)
    return done


@pytest.mark.timeout(600)
def test_first_crawl_records_every_fetch(runs: dict[str, Run]) -> None:
    first = runs["first"]
    assert first.returncode == 0, first.stderr[-3000:]
    assert counts(first) == dict.fromkeys(counts(first), 0) | {
        "new": PRODUCT_PAGES + NAVIGATION + MISSING
    }
    assert len(first.fetch_state) == PRODUCT_PAGES + NAVIGATION + MISSING == 1058
    assert not any(url.endswith("/robots.txt") for url in first.fetch_state)
    one = next(s for url, s in first.fetch_state.items() if url.endswith("/products/1"))
    assert one["status"] == 200 and one["etag"].startswith('"') and one["last_modified"]
    assert len(first.products) == 998


@pytest.mark.timeout(600)
def test_unchanged_recrawl_gets_304s_and_marks_rows_seen(runs: dict[str, Run]) -> None:
    first, second = runs["first"], runs["unchanged"]
    assert second.returncode == 0, second.stderr[-3000:]
    assert counts(second) == {
        "new": 0, "unchanged": NAVIGATION + MISSING, "changed": 0,
        "not_modified": PRODUCT_PAGES, "skipped_recent": 0,
    }  # fmt: skip
    assert second.not_modified_answers == PRODUCT_PAGES == 1005
    assert second.stats.get("item_scraped_count", 0) == 0  # nothing re-extracted
    assert second.stats["incremental/rows_touched"] == 998
    assert "incremental: 1,005 not modified, 53 unchanged, 0 changed, 0 new" in second.stderr
    # the summary printed at the end says it too
    assert "recrawl: 1,005 not modified (304), 53 unchanged, 0 changed, 0 new" in second.stderr
    assert "recrawl:" not in first.stderr  # a first crawl finds everything new
    # the validators of the first fetch went out with the request
    url = next(url for url in first.fetch_state if url.endswith("/products/1"))
    headers = second.headers
    assert headers["If-None-Match"] == first.fetch_state[url]["etag"]
    assert headers["If-Modified-Since"] == first.fetch_state[url]["last_modified"]
    assert second.fetch_state[url]["status"] == 304
    # rows updated in place: seen by run 2, not changed, not duplicated
    assert second.products.keys() == first.products.keys()
    for sku, row in second.products.items():
        assert (row["first_run_id"], row["last_run_id"]) == (1, 2)
        assert row["changed_at"] == first.products[sku]["changed_at"]
        assert row["last_seen_at"] > first.products[sku]["last_seen_at"]
        assert row["price"] == first.products[sku]["price"]


@pytest.mark.timeout(600)
def test_changed_products_are_detected_exactly(runs: dict[str, Run]) -> None:
    second, third = runs["unchanged"], runs["changed"]
    assert third.returncode == 0, third.stderr[-3000:]
    catalog = build_catalog()
    changed = {catalog.products[i - 1] for i in CHANGED_IDS}
    # a listing page shows its products' prices: it changed with them
    listings = {
        (p.category.slug, catalog.in_category(p.category.slug).index(p) // PAGE_SIZE)
        for p in changed
    }
    assert counts(third) == {
        "new": 0, "unchanged": NAVIGATION + MISSING - len(listings),
        "changed": len(CHANGED_IDS) + len(listings),
        "not_modified": PRODUCT_PAGES - len(CHANGED_IDS), "skipped_recent": 0,
    }  # fmt: skip
    assert third.stats["item_scraped_count"] == len(CHANGED_IDS)
    changed_skus = {p.sku for p in changed}
    for sku, row in third.products.items():
        before = second.products[sku]
        assert row["last_run_id"] == 3
        if sku in changed_skus:
            product = revised(catalog.products[int(sku[3:]) - 1], 1)
            assert Decimal(row["price"]) == product.price != Decimal(before["price"])
            assert row["description"].endswith("Revised edition 1.")
            assert row["changed_at"] == row["last_seen_at"] > before["changed_at"]
        else:
            assert (row["price"], row["changed_at"]) == (before["price"], before["changed_at"])
    assert len(third.products) == 998


@pytest.mark.timeout(600)
def test_min_age_skips_everything_fetched_just_now(runs: dict[str, Run]) -> None:
    third, fourth = runs["changed"], runs["min_age"]
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    # every product link: the pages, and the 404s (fetched just as recently)
    assert counts(fourth)["skipped_recent"] == PRODUCT_PAGES + MISSING
    assert counts(fourth)["not_modified"] == 0
    assert fourth.product_hits == 0  # not one product page requested
    assert fourth.stats.get("item_scraped_count", 0) == 0
    assert "1,008 skipped as fetched less than min_age ago" in fourth.stderr
    assert fourth.products == third.products  # skipped pages are not marked seen


# --- pages and site --------------------------------------------------------------------------
def pages_rows(result: Any) -> dict[str, dict[str, Any]]:
    return {r["url"]: dict(r) for r in result.rows("SELECT * FROM pages")}


def run_stats(result: Any) -> dict[str, Any]:
    (row,) = result.rows("SELECT stats FROM runs ORDER BY id DESC LIMIT 1")
    stats: dict[str, Any] = json.loads(row["stats"])
    return stats


@pytest.mark.timeout(240)
def test_pages_recrawl_counts_304s_as_seen_and_min_age_skips(
    run_crawl: Any, fresh_demo_site: DemoSite
) -> None:
    base = fresh_demo_site.url
    seeds = ["about", "legacy", "products/1", f"old-products/{REDIRECTED_ID}"]
    args = [a for path in seeds for a in ("-a", f"url={base}{path}")] + ["-s", HEALTH]
    first = run_crawl("pages", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    before = pages_rows(first)  # one store: read it before the next run
    second = run_crawl("pages", *args)
    assert second.returncode == 0, second.stderr[-3000:]
    stats = run_stats(second)
    assert stats["incremental/not_modified"] == 4  # the redirect's target answers 304 too
    assert stats.get("item_scraped_count", 0) == 0
    assert stats["incremental/rows_touched"] == 4
    after = pages_rows(second)
    assert after.keys() == before.keys() == {base + path for path in seeds}
    for url, row in after.items():
        assert row["last_run_id"] == 2, url  # one record per input URL, seen by run 2
        assert row["changed_at"] == before[url]["changed_at"], url
        assert row["last_seen_at"] > before[url]["last_seen_at"], url
    third = run_crawl("pages", *args, "-a", "min_age=30m")
    assert third.returncode == 0, third.stderr[-3000:]
    assert run_stats(third)["incremental/skipped_recent"] == len(seeds)
    assert "4 skipped as fetched less than min_age ago" in third.stderr
    assert all(row["last_run_id"] == 2 for row in pages_rows(third).values())


@pytest.mark.timeout(240)
def test_full_refetch_of_the_same_body_is_unchanged(run_crawl: Any, demo_site: DemoSite) -> None:
    args = ["-a", f"url={demo_site.url}about", "-s", "CONDITIONAL_REVALIDATE=false"]
    first = run_crawl("pages", *args)
    (before,) = pages_rows(first).values()
    second = run_crawl("pages", *args)
    assert first.returncode == second.returncode == 0, second.stderr[-3000:]
    assert run_stats(second)["incremental/unchanged"] == 1
    (after,) = pages_rows(second).values()
    assert after["fetched_at"] != before["fetched_at"]  # volatile: stored, not hashed
    assert after["changed_at"] == before["changed_at"]
    assert after["row_hash"] == before["row_hash"]


@pytest.mark.timeout(240)
def test_state_of_an_unfinished_run_is_not_trusted(
    run_crawl: Any, fresh_demo_site: DemoSite
) -> None:
    args = ["-a", f"url={fresh_demo_site.url}about", "-a", f"url={fresh_demo_site.url}legacy"]
    first = run_crawl("pages", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    with sqlite3.connect(first.db) as conn:  # as if run 1 had been killed
        conn.execute("UPDATE runs SET finished_at = NULL, finish_reason = NULL")
    second = run_crawl("pages", *args, "-a", "min_age=1h")
    assert second.returncode == 0, second.stderr[-3000:]
    stats = run_stats(second)
    assert stats["incremental/unchanged"] == 2 and "incremental/not_modified" not in stats
    assert "incremental/skipped_recent" not in stats
    assert sum(fresh_demo_site.not_modified.values()) == 0
    assert stats["item_scraped_count"] == 2


@pytest.mark.timeout(240)
def test_site_revalidates_only_pages_whose_links_it_does_not_need(
    run_crawl: Any, fresh_demo_site: DemoSite
) -> None:
    args = ["-a", f"start_url={fresh_demo_site.url}", "-a", "depth=1", "-s", HEALTH]
    first = run_crawl("site", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(pages_rows(first)) == 19
    second = run_crawl("site", *args)
    assert second.returncode == 0, second.stderr[-3000:]
    stats = run_stats(second)
    # depth 1: the home page is fetched in full for its links; its 17 HTML links answer 304
    # (8 categories, 5 featured, about, legacy, slow, /old-catalog -> /catalog/)
    assert stats["incremental/not_modified"] == 17
    assert stats["incremental/unchanged"] == 2  # home, and the 404 without validators
    assert fresh_demo_site.not_modified["/"] == 0
    rows = pages_rows(second)
    assert len(rows) == 19
    assert {row["last_run_id"] for row in rows.values()} == {2}


# --- arguments and the fetch state on its own -----------------------------------------------
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("45s", 45.0), ("30m", 1800.0), ("6h", 21600.0), ("2d", 172800.0),
     ("1w", 604800.0), ("1.5h", 5400.0), (" 2D ", 172800.0), ("0", 0.0), ("1h30m", 5400.0)],
)  # fmt: skip
def test_min_age_durations(text: str, seconds: float) -> None:
    values = SiteSpider.parse_arguments({"start_url": "http://127.0.0.1/", "min_age": text})
    assert values["min_age"] == seconds


@pytest.mark.timeout(30)
@pytest.mark.parametrize("text", ["", "abc", "-5m", "5 minutes", "1h 30", "5y"])
def test_malformed_min_age_is_a_one_line_argument_error(text: str) -> None:
    with pytest.raises(ArgumentError) as error:
        PagesSpider.parse_arguments({"url": "http://127.0.0.1/", "min_age": text})
    message = str(error.value)
    assert message.startswith(f"invalid argument min_age={text!r}: expected a duration")
    assert "\n" not in message


@pytest.mark.timeout(30)
def test_fetch_state_reads_its_buffer_and_trusts_finished_runs_only(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as store:
        state = FetchState(store)
        store.run_id = store.start_run("pages", arguments={}, profile=None, settings={})
        record = FetchRecord("http://a/", 200, '"e1"', None, "h1", "2024-01-01T00:00:00+00:00", 1)
        state.record(record)
        assert state.get("http://a/") == record and state.pending == 1
        assert state.flush() and state.pending == 0
        assert state.get("http://a/") == record  # from the table: run 1 is not finished
        store.conn.execute("UPDATE runs SET finished_at = '2024-01-01', finish_reason = 'x'")
        stored = state.get("http://a/")
        assert stored is not None and stored.trusted and stored.etag == '"e1"'
        store.conn.execute("UPDATE runs SET finish_reason = 'store_error'")
        stored = state.get("http://a/")
        assert stored is not None and not stored.trusted
        assert state.get("http://b/") is None
        assert record.age() > 3600


# --- two spiders, one store (U1) -------------------------------------------------------------
@pytest.mark.timeout(300)
def test_site_after_products_stores_every_page(run_crawl: Any, fresh_demo_site: DemoSite) -> None:
    """The validators `products` stored never turn a `site` fetch into a 304."""
    base = fresh_demo_site.url
    first = run_crawl("products", "-a", f"start_url={base}", "-a", "max_products=10", "-s", HEALTH)
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_crawl("site", "-a", f"start_url={base}", "-a", "depth=1", "-s", HEALTH)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(pages_rows(second)) == 19
    stats = run_stats(second)
    assert "incremental/not_modified" not in stats and "incremental/skipped_recent" not in stats
    assert sum(fresh_demo_site.not_modified.values()) == 0  # no validators went out


@pytest.mark.timeout(600)
def test_products_after_a_whole_site_crawl_stores_every_product(
    run_crawl: Any, fresh_demo_site: DemoSite
) -> None:
    """A `products` crawl after `site` covered the shop stores all 998 products, first time."""
    base = fresh_demo_site.url
    site_args = ["-a", "depth=20", "-a", "max_pages=5000", "-s", HEALTH]
    first = run_crawl("site", "-a", f"start_url={base}", *site_args, timeout=280)
    assert first.returncode == 0, first.stderr[-3000:]
    pages_before = pages_rows(first)
    assert sum("/products/" in url for url in pages_before) >= PRODUCT_PAGES  # the whole shop
    second = run_crawl("products", "-a", f"start_url={base}", "-s", HEALTH, timeout=280)
    assert second.returncode == 0, second.stderr[-3000:]
    tables = {row["name"] for row in second.rows("SELECT name FROM sqlite_master")}
    stored = int("products" in tables and second.rows("SELECT count(*) FROM products")[0][0])
    assert stored == 998
    (run,) = second.rows("SELECT items, duplicates, stats FROM runs WHERE id = 2")
    assert (run["items"], run["duplicates"]) == (998, len(FEATURED_IDS))
    assert "incremental/not_modified" not in json.loads(run["stats"])
    # and `site`'s rows were not marked seen by the `products` run
    assert pages_rows(second) == pages_before


@pytest.mark.timeout(240)
def test_rows_deleted_from_the_store_are_fetched_again(
    run_crawl: Any, fresh_demo_site: DemoSite
) -> None:
    """Validators stand for a stored row: without the row, the page is fetched in full."""
    base = fresh_demo_site.url
    args = ["-a", f"start_url={base}", "-a", "depth=1", "-s", HEALTH]
    first = run_crawl("site", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    gone = [f"{base}about", f"{base}legacy"]  # pages at the depth limit: revalidated next time
    with sqlite3.connect(first.db) as conn:
        conn.executemany("DELETE FROM pages WHERE url = ?", [(url,) for url in gone])
    second = run_crawl("site", *args)
    assert second.returncode == 0, second.stderr[-3000:]
    rows = pages_rows(second)
    assert len(rows) == 19 and all(rows[url]["last_run_id"] == 2 for url in gone)
    stats = run_stats(second)
    assert stats["incremental/not_modified"] == 17 - len(gone)
    assert stats["incremental/row_missing"] == len(gone)
    assert fresh_demo_site.not_modified["/about"] == fresh_demo_site.not_modified["/legacy"] == 0


@pytest.mark.timeout(30)
def test_fetch_state_is_scoped_and_backed_by_its_item_row(tmp_path: Path) -> None:
    url = "http://shop/products/1"
    with open_store(tmp_path / "s.sqlite") as store:
        store.run_id = store.start_run("products", arguments={}, profile=None, settings={})
        products, site = FetchState(store, scope="products"), FetchState(store, scope="site")
        mine = FetchRecord(url, 200, '"p"', None, "h1", "2024-01-01T00:00:00+00:00", 1)
        products.record(mine)
        products.link(url, "products", url)
        assert site.get(url) is None  # not even the buffered one
        assert products.flush()
        store.conn.execute("UPDATE runs SET finished_at = '2024-01-01', finish_reason = 'x'")
        assert site.get(url) is None  # another spider never sees it
        stored = products.get(url)
        assert stored is not None and stored.trusted
        assert (stored.item_table, stored.item_url) == ("products", url)
        # the row the fetch stored is not in the table: nothing would back a 304
        assert not products.backed(stored)
        store.add_item(ProductItem, {"sku": "A1", "url": url, "price": Decimal(1)})
        store.add_item(PageItem, {"url": url, "status": 200})
        assert store.flush()
        assert products.backed(stored)
        # the same URL recorded by `site` is a row of its own, and never linked to products
        site.record(FetchRecord(url, 200, '"s"', None, "h2", "2024-01-01T00:00:00+00:00", 1))
        assert site.flush()
        assert products.get(url) == stored
        site_state = site.get(url)
        assert site_state is not None and site_state.etag == '"s"' and site_state.item_table is None
        # a 304 seen by the next `products` run marks its own table's row only, once
        store.run_id = store.start_run("products", arguments={}, profile=None, settings={})
        products.touch("products", [url], "2030-01-01T00:00:00+00:00")
        assert products.flush() and products.rows_touched == 1
        products.touch("products", [url, "http://shop/other"], "2030-01-01T00:00:01+00:00")
        assert products.flush() and products.rows_touched == 1
        seen = dict(store.conn.execute("SELECT 'products', last_seen_at FROM products").fetchall())
        seen |= dict(store.conn.execute("SELECT 'pages', last_seen_at FROM pages").fetchall())
        assert seen["products"] == "2030-01-01T00:00:00+00:00" != seen["pages"]
        # a row removed from its table, or the table dropped: nothing backs the state any more
        store.conn.execute("DELETE FROM products")
        assert not products.backed(stored)
        store.conn.execute("DROP TABLE products")
        assert not FetchState(store, scope="products").backed(stored)


@pytest.mark.timeout(30)
def test_url_only_fetch_state_is_dropped_by_the_migration(tmp_path: Path) -> None:
    """State of the URL-only schema cannot say whose items back it: the upgrade forgets it."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:3]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 3")
        conn.execute(
            "INSERT INTO runs (id, spider, finished_at, finish_reason)"
            " VALUES (1, 'site', '2024-01-01', 'finished')"
        )
        conn.execute(
            "INSERT INTO fetch_state (url, status, etag, run_id)"
            " VALUES ('http://a/', 304, '\"e\"', 1)"
        )
    with open_store(path) as store:
        assert store.conn.execute("SELECT count(*) FROM fetch_state").fetchone()[0] == 0
        assert FetchState(store, scope="site").get("http://a/") is None
        assert store.run(1) is not None  # the rest of the store is kept
