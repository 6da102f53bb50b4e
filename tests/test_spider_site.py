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
