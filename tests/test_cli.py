"""`scrapy …` and `python -m crawler.demo …` as a user runs them: exit codes and messages."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, run_contained, scrapy_env

pytestmark = pytest.mark.timeout(60)


def scrapy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return run_contained(
        [sys.executable, "-m", "scrapy", *args], cwd=cwd, env=scrapy_env(),
        capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_scrapy_list_shows_every_spider() -> None:
    done = scrapy("list")
    assert done.returncode == 0
    assert done.stdout.split() == ["pages", "products", "site"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pages"], "error: pages needs -a url=URL or -a urls=FILE"),
        (["pages", "-a", "urls=/no/such/file.txt"],
         "error: invalid argument urls='/no/such/file.txt': cannot read file:"
         " No such file or directory"),
        (["pages", "-a", "url=ftp://example.test/"],
         "error: invalid argument url='ftp://example.test/': scheme 'ftp' not allowed"
         " (only http and https)"),
        (["site", "-a", "start_url=http://a.test/", "-a", "depth=-2"],
         "error: invalid argument depth='-2': must be 0 or more"),
        (["site", "-a", "start_url=http://a.test/", "-a", "allowed_domains=evil.test"],
         "error: unknown argument 'allowed_domains' (this spider takes: allow, deny, depth,"
         " max_pages, min_age, render, sitemap, start_url)"),
        (["products", "-a", "start_url=http://a.test/", "-a", "name=../../x"],
         "error: unknown argument 'name' (this spider takes: max_products, min_age, render,"
         " start_url)"),
        (["pages", "-a", "url=http://a.test/", "-a", "min_age=soon"],
         "error: invalid argument min_age='soon': expected a duration such as 90 (seconds),"
         " 30m, 1h30m, 6h, 2d or 1w"),
        (["site", "-a", "start_url=http://a.test/", "-s", "CRAWL_PROFILE=turbo"],
         "error: unknown CRAWL_PROFILE 'turbo': choose polite, balanced, fast"),
        (["nosuchspider"], "error: no spider named 'nosuchspider' (see `scrapy list`)"),
        (["pages", "-a", "url=http://a.test/", "-s", "ITEM_KEYS=[1"],
         "error: ITEM_KEYS must be a dict (or JSON object), not '[1'"),
        (["pages", "-a", "url=http://a.test/", "-s", 'ITEM_KEYS={"pages": 5}'],
         "error: key of 'pages' must be a list of field names, not 5"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    done = scrapy("crawl", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert last_line(done.stderr) == message
    assert done.stderr.strip() == message, "the error line comes alone, before Scrapy's banner"
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_url_file_that_is_a_directory(tmp_path: Path) -> None:
    done = scrapy("crawl", "pages", "-a", f"urls={tmp_path}", cwd=tmp_path)
    assert done.returncode == 2
    assert last_line(done.stderr).endswith("cannot read file: Is a directory")


@pytest.mark.timeout(120)
def test_demo_crawl_writes_store_and_csv(tmp_path: Path, crawl_in: Any) -> None:
    done = run_contained(
        [sys.executable, "-m", "crawler.demo", "crawl", "-a", "max_products=30"],
        cwd=tmp_path, env=scrapy_env(), capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("Demo site at http://127.0.0.1:")
    db = tmp_path / "data" / "crawler.sqlite"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone()[0] >= 25
        assert conn.execute("SELECT finish_reason FROM runs").fetchone()[0] == "finished"
    (csv_file,) = (tmp_path / "data").glob("products-products-*.csv")
    assert "Crawl finished in" in done.stderr
    assert f"csv:   {csv_file.relative_to(tmp_path)}" in done.stderr or str(csv_file) in done.stderr
