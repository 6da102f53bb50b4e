"""Checks across runs in real crawls: a field that goes empty on the demo shop fails the next run.

The unit tests of the checks' logic are in test_quality_checks_logic.py.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crawler.demo.server import DemoSite
from tests.support import CrawlResult, run_crawl_in, scrapy_here

pytestmark = pytest.mark.timeout(180)


def last_run(result: CrawlResult) -> dict[str, Any]:
    return dict(result.rows("SELECT * FROM runs ORDER BY id DESC LIMIT 1")[0])


def coverage(result: CrawlResult, run_id: int) -> dict[str, tuple[int, int]]:
    rows = result.rows(
        "SELECT item_table, field, filled, items FROM field_coverage WHERE run_id = ?", run_id
    )
    return {f"{r['item_table']}.{r['field']}": (r["filled"], r["items"]) for r in rows}


def failed_lines(result: CrawlResult) -> list[str]:
    return [
        line.split("ERROR: run failed: ")[1]
        for line in result.stderr.splitlines()
        if "ERROR: run failed: " in line
    ]


@pytest.fixture
def shop() -> Any:
    with DemoSite(slow_seconds=0.3) as site:
        yield site


def products(workdir: Path, site: DemoSite, *extra: str, **kw: Any) -> CrawlResult:
    workdir.mkdir(exist_ok=True)
    args = ["-a", f"start_url={site.url}", "-a", "max_products=30", *extra]
    return run_crawl_in(workdir, "products", *args, **kw)


def test_a_broken_field_fails_the_next_run(
    shop: DemoSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = products(tmp_path, shop)
    assert first.returncode == 0, first.stderr[-3000:]
    run = last_run(first)
    assert (run["exit_status"], run["finish_reason"]) == (0, "finished")
    n = run["items"]  # the demo shop lists a few products twice: the duplicates are dropped
    assert n >= 25
    figures = coverage(first, run["id"])
    assert figures["products.rating"] == (n, n)
    assert figures["products.sku"] == (n, n)
    second = products(tmp_path, shop)
    assert second.returncode == 0, second.stderr[-3000:]
    assert last_run(second)["exit_status"] == 0

    shop.broken_fields = frozenset({"rating"})  # the shop's redesign: the rating's markup changed
    broken = products(tmp_path, shop)
    assert broken.returncode == 1
    run = last_run(broken)
    # the second run, a recrawl answered by 304s, stored too few items to count for coverage
    line = (
        "quality: rating coverage 0% vs 100% median of 1 run"
        " (QUALITY_MAX_COVERAGE_DROP is 20 points)"
    )
    assert failed_lines(broken) == [line]
    # (which products the cap of 30 lets through depends on the order of answers, and so do the
    # duplicates among them: the item count moves by a few)
    m = run["items"]
    assert (run["exit_status"], run["failure"], m >= 25) == (1, line, True)
    assert run["finish_reason"] == "quality_failed"
    assert coverage(broken, run["id"])["products.rating"] == (0, m)
    checks = json.loads(run["checks"])
    rating = next(c for c in checks if c["subject"] == "products.rating")
    assert rating | {"message": ""} == {
        "check": "coverage", "subject": "products.rating", "value": 0.0, "baseline": 1.0,
        "runs": 1, "limit": ">= 80%", "passed": False, "message": "",
    }  # fmt: skip
    assert sum(not c["passed"] for c in checks) == 1
    assert json.loads(run["stats"])["quality/breaches"] == 1
    # the crawl itself finished: its frontier job is closed, the next run starts afresh
    with sqlite3.connect(broken.db) as conn:
        (state,) = conn.execute(
            "SELECT state FROM frontier_jobs WHERE id = ?", (run["job_id"],)
        ).fetchone()
    assert state == "finished"

    shown = scrapy_here(capsys, "runs", str(run["id"]), "--db", str(broken.db))
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "finish       quality_failed (exit status 1)" in out
    assert f"  products ({m} items)" in out
    assert re.search(r"\n    rating +0%  \(median 100% of 1 previous run\)\n", out), out
    assert re.search(r"\n    sku +100%  \(median 100% of 1 previous run\)\n", out), out
    assert f"checks: {len(checks) - 1} passed, 1 failed\n" in out
    assert f"\n  FAILED  coverage  {line.removeprefix('quality: ')}\n" in out
    assert re.search(r"\n  passed  items     \d+ items vs [\d.]+ median of 2 runs", out), out

    # still broken: the failed run is no baseline, and its pages are fetched in full again
    again = products(tmp_path, shop)
    assert again.returncode == 1
    assert failed_lines(again) == [line]


def test_a_first_run_passes_and_a_floor_fails_it(shop: DemoSite, tmp_path: Path) -> None:
    shop.broken_fields = frozenset({"description"})
    plain = products(tmp_path / "plain", shop)
    assert plain.returncode == 0, plain.stderr[-3000:]
    run = last_run(plain)
    assert run["failure"] is None
    assert json.loads(run["checks"]) == []  # nothing to compare with, no floor
    assert coverage(plain, run["id"])["products.description"] == (0, run["items"])

    floor = products(tmp_path / "floor", shop, "-s", 'QUALITY_MIN_COVERAGE={"description": 0.5}')
    assert floor.returncode == 1
    line = "quality: description coverage 0% vs its floor of 50% (QUALITY_MIN_COVERAGE)"
    assert failed_lines(floor) == [line]
    assert last_run(floor)["finish_reason"] == "quality_failed"


def test_a_spider_sets_its_own_threshold(
    shop: DemoSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per spider: custom_settings change a check (here: a floor the project does not set)."""
    (tmp_path / "strict_spiders.py").write_text(
        "from crawler.spiders.products import ProductsSpider\n\n\n"
        "class StrictProducts(ProductsSpider):\n"
        '    name = "strictproducts"\n'
        '    custom_settings = {"QUALITY_MIN_COVERAGE": {"products.description": 0.95}}\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    shop.broken_fields = frozenset({"description"})
    args = ["-s", "SPIDER_MODULES=strict_spiders", "-a", f"start_url={shop.url}"]
    strict = run_crawl_in(tmp_path, "strictproducts", *args, "-a", "max_products=30")
    assert strict.returncode == 1, strict.stderr[-3000:]
    assert failed_lines(strict) == [
        "quality: description coverage 0% vs its floor of 95% (QUALITY_MIN_COVERAGE)"
    ]


def test_scrapy_crawl_exits_1_and_says_why(shop: DemoSite, tmp_path: Path) -> None:
    """The process itself: `scrapy crawl` exits 1 and its log names the field and the figures."""
    shop.broken_fields = frozenset({"in_stock"})
    done = products(tmp_path, shop, "-s", 'QUALITY_MIN_COVERAGE={"in_stock": 0.9}', subprocess=True)
    assert done.returncode == 1, done.stderr[-3000:]
    line = "run failed: quality: in_stock coverage 0% vs its floor of 90% (QUALITY_MIN_COVERAGE)"
    errors = [x.split(" ERROR: ")[1] for x in done.stderr.splitlines() if " ERROR: " in x]
    assert errors == [line], done.stderr[-3000:]
    assert last_run(done)["finish_reason"] == "quality_failed"


def test_workers_are_judged_on_the_coverage_of_them_all(shop: DemoSite, tmp_path: Path) -> None:
    """WORKERS=2: each worker writes its coverage rows; the supervisor judges their sum."""
    first = products(tmp_path, shop)
    assert first.returncode == 0, first.stderr[-3000:]
    shop.broken_fields = frozenset({"rating"})
    workers = ("-s", "WORKERS=2", "-s", "FRONTIER_LEASE_BATCH=2")
    done = products(tmp_path, shop, *workers, subprocess=True)
    assert done.returncode == 1, done.stderr[-3000:]
    run = last_run(done)
    line = (
        "quality: rating coverage 0% vs 100% median of 1 run"
        " (QUALITY_MAX_COVERAGE_DROP is 20 points)"
    )
    assert (run["failure"], run["finish_reason"]) == (line, "quality_failed")
    assert f"run failed: {line}" in done.stderr
    rows = done.rows(
        "SELECT worker, filled, items FROM field_coverage"
        " WHERE run_id = ? AND field = 'rating' ORDER BY worker",
        run["id"],
    )
    assert [r["worker"] for r in rows] == [0, 1]
    assert sum(r["items"] for r in rows) == run["items"] and all(r["filled"] == 0 for r in rows)
    checks = json.loads(run["checks"])
    assert [c["subject"] for c in checks if not c["passed"]] == ["products.rating"]


def test_the_demo_shop_breaks_a_field_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    from crawler.demo.__main__ import main

    with pytest.raises(ValueError, match="cannot break field 'price' \\(breakable: rating"):
        DemoSite(broken_fields={"price"})
    with pytest.raises(SystemExit):
        main(["serve", "--break-field", "price"])
    assert "invalid choice: 'price'" in capsys.readouterr().err
