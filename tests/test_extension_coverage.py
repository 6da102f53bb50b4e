"""FieldCoverage: filled fields per item table, for every item type, bounded for free-form dicts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import attrs
import pydantic
import pytest
import scrapy
from scrapy import Spider
from scrapy.utils.test import get_crawler

from crawler.demo.server import DemoSite
from crawler.extensions.coverage import FieldCoverage, filled
from crawler.stats import COVERAGE, COVERAGE_OTHER
from tests.support import run_crawl_in

pytestmark = pytest.mark.timeout(120)


@dataclasses.dataclass
class Book:
    title: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)


@attrs.define
class AttrsBook:
    title: str | None = None
    price: float | None = None


class PydanticBook(pydantic.BaseModel):
    title: str | None = None
    pages: int | None = None


class ScrapyBook(scrapy.Item):
    title = scrapy.Field()
    author = scrapy.Field()


def extension(**settings: Any) -> FieldCoverage:
    crawler = get_crawler(Spider, settings_dict=settings)
    crawler.spider = Spider("shelf")
    crawler.stats.open_spider()
    ext = FieldCoverage.from_crawler(crawler)
    return ext


def published(ext: FieldCoverage) -> dict[str, Any]:
    ext.spider_closed(ext.crawler.spider)
    value: dict[str, Any] = ext.crawler.stats.get_value(COVERAGE)
    return value


def test_what_counts_as_filled() -> None:
    for value in ("x", 0, 0.0, False, [0], {"a": 1}, b"", " x "):
        assert filled(value), value
    for value in (None, "", "  \n\t", [], {}, (), set(), frozenset()):
        assert not filled(value), value


def test_every_item_type_in_its_table() -> None:
    ext = extension()
    items: list[Any] = [
        Book("A", ["x"]), Book(" ", []), Book(None),
        AttrsBook("B", None), AttrsBook("C", 9.5),
        PydanticBook(title="D"), PydanticBook(pages=3),
        ScrapyBook(title="E"), ScrapyBook(title="", author="F"),
        {"title": "G", "extra": None}, {"title": None},
        "not an item", 42,
    ]  # fmt: skip
    for item in items:
        ext.item_scraped(item)
    assert published(ext) == {
        "attrs_book": {"items": 2, "fields": {"title": 2, "price": 1}},
        "book": {"items": 3, "fields": {"title": 1, "tags": 1}},
        "pydantic_book": {"items": 2, "fields": {"title": 1, "pages": 1}},
        "scrapy_book": {"items": 2, "fields": {"title": 1, "author": 1}},
        # a dict goes to the spider's table; a key seen later counts from its first item
        "shelf": {"items": 2, "fields": {"title": 1, "extra": 0}},
    }


def test_free_form_keys_are_capped_and_the_rest_summed() -> None:
    ext = extension(COVERAGE_MAX_FIELDS=3)
    for n in range(10):
        ext.item_scraped({f"k{n}": 1, f"k{n + 1}": 1, "fixed": n or None})
    coverage = published(ext)["shelf"]
    assert coverage["items"] == 10
    # k0, k1, fixed tracked; the other 18 filled values of the untracked keys summed
    assert coverage["fields"] == {"k0": 1, "k1": 2, "fixed": 9, COVERAGE_OTHER: 17}


def test_off_switch_and_bad_cap() -> None:
    from scrapy.exceptions import NotConfigured

    with pytest.raises(NotConfigured):
        extension(COVERAGE_ENABLED=False)
    with pytest.raises(ValueError, match="COVERAGE_MAX_FIELDS must be at least 1, not 0"):
        extension(COVERAGE_MAX_FIELDS=0)


def test_many_items_are_counted_without_growing() -> None:
    """50,000 items of two types: counts exact, the tracked fields no more than the items have."""
    ext = extension()
    book = Book("A", ["x"])
    row = {f"field{i}": i for i in range(12)}
    n = 50_000
    for _ in range(n):
        ext.item_scraped(book)
        ext.item_scraped(row)
    coverage = published(ext)
    assert coverage["book"]["items"] == coverage["shelf"]["items"] == n
    assert len(coverage["shelf"]["fields"]) == 12
    assert coverage["shelf"]["fields"]["field0"] == n  # 0 is a value, not an empty one


# --- real crawls ------------------------------------------------------------------------------
def plain_spider(url: str, keys: int) -> str:
    """A user's spider as the Scrapy tutorial writes it (no base class of ours), dict items with
    free-form keys: every item has a few keys of its own."""
    return (
        "import scrapy\n\n\n"
        "class FreeFormSpider(scrapy.Spider):\n"
        '    name = "freeform"\n'
        f"    start_urls = [{url!r}]\n\n"
        "    def parse(self, response):\n"
        "        for n in range(30):\n"
        '            item = {"url": f"{response.url}?n={n}", "title": "t" if n % 3 else ""}\n'
        f"            item.update({{f'key{{k}}': k for k in range(n * 20, n * 20 + 20)"
        f" if k < {keys}}})\n"
        "            yield item\n"
    )


def test_a_plain_spider_with_free_form_keys(
    demo_site: DemoSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "freeform_spiders.py").write_text(plain_spider(demo_site.url, 500))
    monkeypatch.syspath_prepend(str(tmp_path))
    done = run_crawl_in(
        tmp_path, "freeform", "-s", "SPIDER_MODULES=freeform_spiders",
        "-s", "SAFETY_ALLOW_PRIVATE_TARGETS=True",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {
        r["field"]: (r["filled"], r["items"])
        for r in done.rows("SELECT * FROM field_coverage WHERE item_table = 'freeform'")
    }
    # 502 keys seen (url, title, key0…key499): 100 tracked, the other 402 summed in one row
    assert len(rows) == 101
    assert rows["url"] == (30, 30)
    assert rows["title"] == (20, 30)
    assert rows[COVERAGE_OTHER] == (402, 30)
    assert sum(f for name, (f, _) in rows.items() if name.startswith("key")) == 98
