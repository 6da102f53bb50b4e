"""SQLitePipeline against a real SQLite file: batches by size and time, close, failures."""

from __future__ import annotations

import logging
import sqlite3
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from scrapy import Spider
from scrapy.exceptions import CloseSpider, NotConfigured
from scrapy.utils.test import get_crawler
from twisted.internet import task

from crawler.items import ProductItem
from crawler.pipelines import sqlite as sqlite_module
from crawler.pipelines.sqlite import SQLitePipeline
from crawler.storage import store_for
from tests.support import Clock, FakeEngine

if TYPE_CHECKING:
    from pathlib import Path

    from scrapy.crawler import Crawler

pytestmark = pytest.mark.timeout(30)


class ShopSpider(Spider):
    name = "shop"


def make_crawler(tmp_path: Path, **settings: Any) -> Crawler:
    values = {"SQLITE_ENABLED": True, "SQLITE_PATH": str(tmp_path / "db" / "crawler.sqlite")}
    crawler = get_crawler(ShopSpider, {**values, **settings})
    crawler.spider = ShopSpider.from_crawler(crawler)
    return crawler


def opened(crawler: Crawler) -> SQLitePipeline:
    pipeline = SQLitePipeline.from_crawler(crawler)
    pipeline.clock = task.Clock()  # no reactor needed; the test moves time
    pipeline.open_spider()
    return pipeline


def product(sku: str) -> ProductItem:
    return ProductItem(
        sku=sku, name="n", price=Decimal("1.50"), currency="EUR", url=f"http://x/{sku}"
    )


def count(tmp_path: Path, table: str = "products") -> int:
    with sqlite3.connect(tmp_path / "db" / "crawler.sqlite") as conn:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] if exists else 0


def refuse_sku(tmp_path: Path, sku: str) -> None:
    with sqlite3.connect(tmp_path / "db" / "crawler.sqlite") as conn:
        conn.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON products WHEN NEW.sku = '{sku}'"
            " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )


def test_disabled_store_is_not_configured(tmp_path: Path) -> None:
    with pytest.raises(NotConfigured):
        SQLitePipeline.from_crawler(make_crawler(tmp_path, SQLITE_ENABLED=False))


def test_items_are_written_per_batch_size(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path, SQLITE_BATCH_SIZE=3, SQLITE_BATCH_SECONDS=60)
    pipeline = opened(crawler)
    for sku in "AB":
        assert pipeline.process_item(product(sku)).sku == sku
    assert count(tmp_path) == 0
    pipeline.process_item(product("C"))
    assert count(tmp_path) == 3
    pipeline.process_item(product("D"))
    pipeline.close_spider()
    assert count(tmp_path) == 4
    assert crawler.stats.get_value("sqlite/items_written") == 4
    assert crawler.stats.get_value("sqlite/batches") == 2
    assert not pipeline.store.is_open


def test_slow_crawl_is_flushed_by_the_timer(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path, SQLITE_BATCH_SIZE=1000, SQLITE_BATCH_SECONDS=0.1)
    pipeline = opened(crawler)
    pipeline.store.clock = clock = Clock(time.monotonic())  # from now on, moved by hand
    pipeline.process_item(product("A"))
    assert count(tmp_path) == 0
    clock.now += 0.15
    assert isinstance(pipeline.clock, task.Clock)
    pipeline.clock.advance(0.05)  # one tick of the LoopingCall, no new item
    assert count(tmp_path) == 1
    pipeline.close_spider()
    assert pipeline.loop is not None and not pipeline.loop.running


def test_pipeline_and_recorder_share_one_store(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path)
    assert store_for(crawler) is SQLitePipeline.from_crawler(crawler).store


def test_dict_items_are_stored_in_the_spiders_table(tmp_path: Path) -> None:
    pipeline = opened(make_crawler(tmp_path))
    assert pipeline.process_item({"a": 1}) == {"a": 1}
    pipeline.process_item({"a": 2})
    pipeline.process_item({"a": 2})  # the same content: the same row
    pipeline.close_spider()
    assert count(tmp_path, "shop") == 2


def test_unopenable_store_closes_the_spider_with_one_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "db").write_text("a file where the directory should be")
    pipeline = SQLitePipeline.from_crawler(make_crawler(tmp_path))
    with pytest.raises(CloseSpider) as caught:
        pipeline.open_spider()
    assert caught.value.reason == "store_error"
    pipeline.close_spider()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"SQLite store unavailable: {tmp_path / 'db' / 'crawler.sqlite'}:"
        f" Not a directory: {tmp_path / 'db'}"
    ]


def test_failed_batch_is_retried_at_the_next_flush(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path, SQLITE_BATCH_SIZE=1, SQLITE_BATCH_SECONDS=0.05)
    pipeline = opened(crawler)
    pipeline.store.clock = clock = Clock(time.monotonic())  # from now on, moved by hand
    pipeline.process_item(product("A"))
    refuse_sku(tmp_path, "B")
    pipeline.process_item(product("B"))
    pipeline.process_item(product("C"))  # waits: after a failure only the timer retries
    assert count(tmp_path) == 1 and pipeline.store.pending_items == 2
    with sqlite3.connect(tmp_path / "db" / "crawler.sqlite") as conn:
        conn.execute("DROP TRIGGER refuse")
    clock.now += 0.06
    pipeline.flush_if_due()
    assert count(tmp_path) == 3
    assert crawler.stats.get_value("sqlite/write_errors") == 1
    pipeline.close_spider()


def test_failure_at_close_reports_unsaved_items(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crawler = make_crawler(tmp_path, SQLITE_BATCH_SIZE=1)
    pipeline = opened(crawler)
    pipeline.process_item(product("A"))
    refuse_sku(tmp_path, "B")
    for sku in "BCD":
        pipeline.process_item(product(sku))
    pipeline.close_spider()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("SQLite store: 3 items and 0 rejects not saved: ")
    assert "disk says no" in errors[0]
    assert crawler.stats.get_value("sqlite/unsaved_items") == 3


def test_repeated_write_failures_stop_the_crawl(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path, SQLITE_BATCH_SIZE=1, SQLITE_BATCH_SECONDS=0.01)
    assert crawler.spider is not None
    engine = FakeEngine(crawler.spider)
    crawler.engine = engine  # type: ignore[assignment]
    pipeline = opened(crawler)
    pipeline.store.clock = clock = Clock(time.monotonic())  # from now on, moved by hand
    pipeline.process_item(product("A"))
    refuse_sku(tmp_path, "B")
    pipeline.process_item(product("B"))
    for _ in range(sqlite_module.MAX_FAILED_FLUSHES + 2):
        clock.now += 0.015
        pipeline.flush_if_due()
    assert engine.reasons == ["store_error"]
    pipeline.close_spider()
