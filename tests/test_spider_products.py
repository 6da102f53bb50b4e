"""The `products` spider over the whole demo shop: the dataset must equal the catalog."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from crawler.demo.catalog import (
    DISCONTINUED,
    FEATURED_IDS,
    LEGACY_ID,
    MESSY_ID,
    PRICE_ON_REQUEST_IDS,
    PRODUCT_COUNT,
    REDIRECTED_ID,
    build_catalog,
)
from crawler.demo.server import DemoSite
from crawler.items import ProductItem, field_specs


@pytest.fixture(scope="module")
def crawl(demo_site: DemoSite, tmp_path_factory: pytest.TempPathFactory, crawl_in: Any) -> Any:
    return crawl_in(
        tmp_path_factory.mktemp("products"), "products", "-a", f"start_url={demo_site.url}"
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_counts(crawl: Any) -> None:
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    valid = PRODUCT_COUNT - len(PRICE_ON_REQUEST_IDS)
    assert crawl.rows("SELECT count(*) AS n FROM products")[0]["n"] == valid == 998
    (run,) = crawl.rows("SELECT * FROM runs")
    assert run["finish_reason"] == "finished"
    assert (run["items"], run["rejects"]) == (valid, len(PRICE_ON_REQUEST_IDS))
    assert run["duplicates"] == len(FEATURED_IDS)
    assert run["errors"] == len(DISCONTINUED)
    assert "Crawl finished in" in crawl.stderr
    assert f"{valid:,} items, 2 rejects, 5 duplicates, 3 errors" in crawl.stderr


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_every_product_matches_the_catalog(crawl: Any, demo_site: DemoSite) -> None:
    rows = {r["sku"]: r for r in crawl.rows("SELECT * FROM products")}
    for product in build_catalog().products:
        if product.id in PRICE_ON_REQUEST_IDS:
            assert product.sku not in rows
            continue
        row = rows[product.sku]
        assert row["name"] == product.name
        assert Decimal(row["price"]) == product.price
        assert row["currency"] == product.currency
        assert bool(row["in_stock"]) is product.in_stock
        assert row["rating"] == product.rating
        assert row["category"] == product.category.name
        assert row["url"] == f"{demo_site.url}products/{product.id}"
    legacy = build_catalog().products[LEGACY_ID - 1]
    assert rows[legacy.sku]["name"] == "Café Crème – Deluxe Grinder"
    messy = build_catalog().products[MESSY_ID - 1]
    assert rows[messy.sku]["name"] == "Salt & Pepper Mill"
    assert "\x0b" not in rows[messy.sku]["description"]
    assert "  " not in rows[messy.sku]["description"]
    moved = build_catalog().products[REDIRECTED_ID - 1]
    assert rows[moved.sku]["url"] == f"{demo_site.url}products/{REDIRECTED_ID}"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_rejects_say_why(crawl: Any) -> None:
    rejects = crawl.rows("SELECT * FROM rejects ORDER BY url")
    assert len(rejects) == len(PRICE_ON_REQUEST_IDS)
    for reject in rejects:
        assert "price" in reject["reason"] and "Price on request" in reject["reason"]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_csv_matches_the_store(crawl: Any) -> None:
    rows = crawl.csv_rows()
    assert list(rows[0]) == [f.name for f in field_specs(ProductItem)]
    assert len(rows) == 998
    stored = {r["sku"]: r["price"] for r in crawl.rows("SELECT sku, price FROM products")}
    assert {r["sku"]: r["price"] for r in rows} == stored
