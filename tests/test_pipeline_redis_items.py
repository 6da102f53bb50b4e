"""RedisItemsPipeline against a real redis-server: items and rejects into the job's stream."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from crawler.exceptions import RejectItem
from crawler.extensions.runrecorder import RunRecorder
from crawler.frontier.itemstream import StreamItem, StreamOther, items_sink_for, read_entry
from crawler.frontier.jobs import ARGUMENTS_SETTING, job_key
from crawler.items import ProductItem
from crawler.pipelines.csv_file import CsvPipeline
from crawler.pipelines.redis_items import RedisItemsPipeline
from crawler.pipelines.sqlite import SQLitePipeline
from tests.redisserver import RedisServer

if TYPE_CHECKING:
    from pathlib import Path

    from scrapy.crawler import Crawler

pytestmark = pytest.mark.timeout(30)


class ShopSpider(Spider):
    name = "shop"


def make_crawler(tmp_path: Path, **settings: Any) -> Crawler:
    values = {
        "SQLITE_ENABLED": True, "CSV_ENABLED": True,
        "SQLITE_PATH": str(tmp_path / "crawler.sqlite"), "CSV_EXPORT_DIR": str(tmp_path / "out"),
        ARGUMENTS_SETTING: {"a": "1"}, **settings,
    }  # fmt: skip
    crawler = get_crawler(ShopSpider, values)
    crawler.spider = ShopSpider.from_crawler(crawler)
    return crawler


def stream(server: RedisServer) -> list[tuple[str, dict[str, str]]]:
    key = f"crawler:shop:{job_key('shop', {'a': '1'})}:items"
    return list(server.client().xrange(key))


def test_items_and_rejects_go_to_the_stream(
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    crawler = make_crawler(
        tmp_path, FRONTIER="redis", REDIS_ITEMS=True, REDIS_URL=redis_server.url,
        REDIS_ITEMS_BATCH_SIZE=3, RUN_RECORD=True,
    )  # fmt: skip
    # the worker keeps no store rows and no CSV of its own: scrapy ingest has the run
    for component in (SQLitePipeline, CsvPipeline, RunRecorder):
        with pytest.raises(NotConfigured):
            component.from_crawler(crawler)
    pipeline = RedisItemsPipeline.from_crawler(crawler)
    assert items_sink_for(crawler) is pipeline
    pipeline.open_spider()
    seen = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    item = ProductItem(
        sku="A1", name="Lamp", price=Decimal("10.50"), currency="EUR", in_stock=False,
        url="http://x/a1", image_urls=["http://x/1.png"],
    )  # fmt: skip
    pipeline.process_item(item)
    pipeline.process_item({"title": "a dict", "when": seen, "raw": b"\x00\xff"})
    assert stream(redis_server) == []  # buffered: below the batch size
    pipeline.item_dropped({"sku": "B2"}, RejectItem("price: missing"))
    assert len(stream(redis_server)) == 0  # rejects are sent with the next flush
    assert pipeline.frontier_flush() is True

    entries = [read_entry(fields) for _, fields in stream(redis_server)]
    declared, record, reject = entries
    assert isinstance(declared, StreamItem) and isinstance(record, StreamItem)
    assert declared.placement.table == "products" and declared.placement.key == ("sku",)
    assert declared.values["price"] == Decimal("10.50") and declared.values["in_stock"] is False
    assert declared.values["image_urls"] == ["http://x/1.png"]
    assert record.placement.table == "shop" and record.placement.fields is None
    assert record.values == {"title": "a dict", "when": seen, "raw": b"\x00\xff"}
    assert isinstance(reject, StreamOther)
    assert (reject.kind, reject.item, reject.reason) == ("reject", {"sku": "B2"}, "price: missing")
    pipeline.close_spider()


def test_off_unless_redis_frontier_and_redis_items(tmp_path: Path) -> None:
    for settings in ({}, {"REDIS_ITEMS": True}, {"FRONTIER": "redis"}):
        crawler = make_crawler(tmp_path, **settings)
        with pytest.raises(NotConfigured):
            RedisItemsPipeline.from_crawler(crawler)
        assert isinstance(SQLitePipeline.from_crawler(crawler), SQLitePipeline)


def test_a_failed_flush_keeps_the_items(
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """Redis away: the frontier is told (False: the requests stay leased) and nothing is lost."""
    crawler = make_crawler(tmp_path, FRONTIER="redis", REDIS_ITEMS=True, REDIS_URL=redis_server.url)
    pipeline = RedisItemsPipeline.from_crawler(crawler)
    pipeline.open_spider()
    pipeline.process_item({"title": "kept"})
    redis_server.stop()
    assert pipeline.frontier_flush() is False
    assert crawler.stats.get_value("redis_items/failed_flushes") == 1
    redis_server.start()
    assert pipeline.frontier_flush() is True
    (entry,) = [read_entry(fields) for _, fields in stream(redis_server)]
    assert isinstance(entry, StreamItem) and entry.values == {"title": "kept"}
    pipeline.close_spider()
