"""Bring your own spider: the tutorial's quotes spider with dict items, ``scrapy.Item`` without
types and a dataclass, crawled in-process against a local quotes site (100 quotes, 10 pages):
every item is stored, written to CSV, seen by Scrapy's feed exports, upserted on a rerun, and
exported back with its lists as lists."""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
from typing import TYPE_CHECKING

import pytest

from tests.quotesite import QuoteSite, quotes
from tests.support import CrawlResult, run_crawl_in, scrapy_here

if TYPE_CHECKING:
    from collections.abc import Iterator

from pathlib import Path

pytestmark = pytest.mark.timeout(120)

SPIDERS = [
    # spider, table, CSV tags cell of ["a", "b"], export gives the tags list back
    ("quotes", "quotes", '["love", "books"]'),
    ("item_quotes", "quote_item", '["love", "books"]'),
    ("dataclass_quotes", "quote_records", "love | books"),
    ("attrs_quotes", "attrs_quote", "love | books"),
    ("pydantic_quotes", "pydantic_quote", "love | books"),
]


@pytest.fixture(scope="module")
def site() -> Iterator[QuoteSite]:
    with QuoteSite() as running:
        yield running


def crawl(workdir: Path, spider: str, site: QuoteSite, *extra: str) -> CrawlResult:
    return run_crawl_in(
        workdir, spider, "-a", f"url={site.url}",
        "-s", "SPIDER_MODULES=tests.quotespiders",  # start requests name 127.0.0.1: no setting
        *extra,
    )  # fmt: skip


def count(result: CrawlResult, table: str) -> int:
    with sqlite3.connect(result.db) as conn:
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


@pytest.mark.parametrize(("spider", "table", "tags_cell"), SPIDERS)
def test_every_item_type_is_stored_written_and_fed(
    tmp_path: Path, site: QuoteSite, spider: str, table: str, tags_cell: str
) -> None:
    feeds = tmp_path / "feeds"
    result = crawl(
        tmp_path, spider, site,
        "-O", str(feeds / "q.json"), "-O", str(feeds / "q.jsonl"), "-O", str(feeds / "q.csv"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert count(result, table) == 100
    rows = result.csv_rows()
    assert len(rows) == 100
    expected = {q["text"]: q for q in quotes()}
    by_text = {row["text"]: row for row in rows}
    assert by_text.keys() == expected.keys()
    two_tags = next(q for q in quotes() if q["tags"] == ["love", "books"])
    assert by_text[two_tags["text"]]["tags"] == tags_cell
    assert len(json.loads((feeds / "q.json").read_text())) == 100
    assert len((feeds / "q.jsonl").read_text().splitlines()) == 100
    with (feeds / "q.csv").open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 100

    again = crawl(tmp_path, spider, site)  # a rerun updates the rows instead of adding
    assert again.returncode == 0, again.stderr[-3000:]
    assert count(again, table) == 100


@pytest.mark.parametrize(("spider", "table"), [("quotes", "quotes"), ("item_quotes", "quote_item")])
def test_export_gives_schemaless_lists_back(
    tmp_path: Path, site: QuoteSite, capsys: pytest.CaptureFixture[str], spider: str, table: str
) -> None:
    result = crawl(tmp_path, spider, site)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "q.jsonl"
    done = scrapy_here(capsys, "export", table, "-o", str(out), "--db", str(result.db))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 100
    expected = {q["text"]: q["tags"] for q in quotes()}
    assert {r["text"]: r["tags"] for r in records} == expected


def test_item_keys_setting_upserts_on_the_natural_key(tmp_path: Path, site: QuoteSite) -> None:
    keys = json.dumps({"quotes": ["author"]})  # 17 authors: the later quote of each wins
    result = crawl(tmp_path, "quotes", site, "-s", f"ITEM_KEYS={keys}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert count(result, "quotes") == 17


def test_odd_items_are_stored_or_rejected_with_a_reason(tmp_path: Path, site: QuoteSite) -> None:
    feed = tmp_path / "odd.jsonl"
    result = crawl(
        tmp_path, "odd_items", site,
        "-O", str(feed), "-O", str(tmp_path / "odd.json"), "-O", str(tmp_path / "odd.csv"),
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: a rejected item may fail it
    with sqlite3.connect(result.db) as conn:
        stored = {r[0] for r in conn.execute('SELECT "case" FROM odd_items')}
        rejects = conn.execute("SELECT reason FROM rejects").fetchall()
    assert stored == {
        "awkward", "wide", "typed", "retyped", "deep", "none", "bytes", "surrogate",
    }  # fmt: skip
    (reason,) = [r[0] for r in rejects]
    assert "text" in reason and "100000" in reason.replace(",", "").replace("_", "")
    assert len(feed.read_text(encoding="utf-8").splitlines()) == len(stored)
    assert len(json.loads((tmp_path / "odd.json").read_text(encoding="utf-8"))) == len(stored)
    with (tmp_path / "odd.csv").open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == len(stored)


TUTORIAL_SPIDER = """
import scrapy


class QuotesSpider(scrapy.Spider):
    name = "{name}"
    start_urls = ["{url}"]

    def parse(self, response):
        for quote in response.css("div.quote"):
            yield {{
                "text": quote.css("span.text::text").get(),
                "author": quote.css("small.author::text").get(),
                "tags": quote.css("div.tags a.tag::text").getall(),
            }}

        next_page = response.css("li.next a::attr(href)").get()
        if next_page is not None:
            yield response.follow(next_page, callback=self.parse)
"""


def tutorial_spider(tmp_path: Path, name: str, url: str) -> str:
    """The Scrapy tutorial's spider, as it is but for its start URL, in a module of its own."""
    (tmp_path / f"{name}.py").write_text(TUTORIAL_SPIDER.format(name=name, url=url))
    sys.path.insert(0, str(tmp_path))
    return name


def test_the_tutorial_spider_as_it_is(tmp_path: Path, site: QuoteSite, refused_url: str) -> None:
    """Done when of issue 12: its items in SQLite and a CSV, -O writes all of them, a rerun adds
    no duplicate rows, and a run that stores nothing exits 1."""
    module = tutorial_spider(tmp_path, "tutorial_quotes", f"{site.url}page/1/")
    try:
        args = ("-s", f"SPIDER_MODULES={module}", "-O", str(tmp_path / "quotes.json"))
        first = run_crawl_in(tmp_path, "tutorial_quotes", *args)
        assert first.returncode == 0, first.stderr[-3000:]
        assert count(first, "tutorial_quotes") == 100
        assert len(first.csv_rows()) == 100
        assert len(json.loads((tmp_path / "quotes.json").read_text())) == 100
        rerun = run_crawl_in(tmp_path, "tutorial_quotes", *args[:2])  # same store as the first
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert count(rerun, "tutorial_quotes") == 100
        dead = tutorial_spider(tmp_path, "tutorial_dead", refused_url)
        (tmp_path / "down").mkdir()
        down = run_crawl_in(tmp_path / "down", "tutorial_dead", "-s", f"SPIDER_MODULES={dead}")
        assert down.returncode == 1
        assert "run failed:" in down.stderr
    finally:
        sys.path.remove(str(tmp_path))
