"""The `site` spider end to end against the demo shop: depth, budget, robots, sitemaps, rules."""

from __future__ import annotations

from typing import Any

import pytest

from crawler.demo.catalog import PRODUCT_COUNT
from crawler.demo.server import DemoSite

pytestmark = pytest.mark.timeout(120)


def test_depth_one_from_home(run_crawl: Any, fresh_demo_site: DemoSite) -> None:
    base = fresh_demo_site.url
    result = run_crawl("site", "-a", f"start_url={base}", "-a", "depth=1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["url"]: r for r in result.rows("SELECT * FROM pages")}
    # home + its 19 links, less /private/ which robots.txt disallows
    assert len(rows) == 19
    assert f"{base}private/secret" not in rows
    assert fresh_demo_site.hits["/private/secret"] == 0
    assert rows[f"{base}missing-page"]["status"] == 404
    assert rows[f"{base}old-catalog"]["final_url"] == f"{base}catalog/"
    assert rows[f"{base}legacy"]["title"] == "Crème brûlée – the legacy page"
    # depth 1: links of the category pages were not followed
    assert not any("page=2" in url for url in rows)
    (run,) = result.rows("SELECT * FROM runs")
    assert (run["items"], run["errors"]) == (19, 1)


def test_deny_pattern_and_depth(run_crawl: Any, demo_site: DemoSite) -> None:
    base = demo_site.url
    result = run_crawl("site", "-a", f"start_url={base}", "-a", "deny=/products/", "-a", "depth=3")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = result.rows("SELECT url, final_url FROM pages")
    urls = [r["url"] for r in rows]
    assert not any("/products/" in url for url in urls)
    # Distinct pages reached: home; 8 categories, about, legacy, slow, missing-page, the catalog
    # (/old-catalog redirects there and listings link it: one or both requests fetch it);
    # /old-products/99 (not denied, it redirects to /products/99); pages 2 and 3 of each category.
    assert len({r["final_url"] for r in rows}) == 1 + 8 + 4 + 1 + 1 + 8 + 8
    assert sum("page=3" in url for url in urls) == 8
    assert not any("page=4" in url for url in urls)


def test_page_budget(run_crawl: Any, demo_site: DemoSite) -> None:
    result = run_crawl("site", "-a", f"start_url={demo_site.url}", "-a", "max_pages=30")
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = result.rows("SELECT * FROM runs")
    assert 25 <= run["items"] <= 30
    assert '"site/max_pages_skipped"' in run["stats"]


@pytest.mark.slow
def test_sitemap_discovery(run_crawl: Any, demo_site: DemoSite) -> None:
    result = run_crawl(
        "site", "-a", f"start_url={demo_site.url}", "-a", "sitemap=true", "-a", "depth=0",
        "-a", "max_pages=5000",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # the sitemap lists home, /catalog/, 8 listings and every product
    assert result.rows("SELECT count(*) AS n FROM pages")[0]["n"] == PRODUCT_COUNT + 10


# --- Scrapy's own limits keep their meaning: DEPTH_LIMIT, CLOSESPIDER_PAGECOUNT -----------------


def listing_urls(run_crawl: Any, demo_site: DemoSite, *args: str) -> list[str]:
    base = demo_site.url
    result = run_crawl("site", "-a", f"start_url={base}", "-a", "deny=/products/", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return [r["url"] for r in result.rows("SELECT url FROM pages")]


@pytest.mark.parametrize(("limit", "deepest"), [("5", 5), ("0", 6)])
def test_user_set_depth_limit_wins_over_the_spider_default(
    limit: str, deepest: int, run_crawl: Any, demo_site: DemoSite
) -> None:
    """-s DEPTH_LIMIT=5 reaches page 5 of each category (the spider's depth 3 stops at page 3);
    0 means no limit, as in Scrapy: the last page (6) of every category."""
    urls = listing_urls(run_crawl, demo_site, "-s", f"DEPTH_LIMIT={limit}")

    assert sum(f"page={deepest}" in url for url in urls) == 8
    assert not any(f"page={deepest + 1}" in url for url in urls)


@pytest.mark.slow
def test_closespider_pagecount_zero_lifts_the_spider_page_budget(
    run_crawl: Any, demo_site: DemoSite
) -> None:
    """The spider's own budget (max_pages 1000) no longer stops a crawl the user let run."""
    result = run_crawl(
        "site", "-a", f"start_url={demo_site.url}", "-a", "depth=10",
        "-s", "CLOSESPIDER_PAGECOUNT=0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = result.rows("SELECT * FROM runs")
    assert run["items"] > PRODUCT_COUNT  # every product and every listing
    assert '"site/max_pages_skipped"' not in run["stats"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "depth=2", "-s", "DEPTH_LIMIT=5"],
         "error: -a depth=2 and DEPTH_LIMIT=5 disagree: set one of them (DEPTH_LIMIT=0: no limit)"),
        (["-a", "max_pages=10", "-s", "CLOSESPIDER_PAGECOUNT=0"],
         "error: -a max_pages=10 and CLOSESPIDER_PAGECOUNT=0 disagree: set one of them"
         " (CLOSESPIDER_PAGECOUNT=0: no limit)"),
    ],
)  # fmt: skip
def test_spider_argument_and_scrapy_setting_that_disagree_are_refused(
    args: list[str], message: str, run_crawl: Any, demo_site: DemoSite
) -> None:
    result = run_crawl("site", "-a", f"start_url={demo_site.url}", *args)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == message
