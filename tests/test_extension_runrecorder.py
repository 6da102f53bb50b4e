"""RunRecorder against a real SQLite file: the run row's lifecycle, rejects, masked settings."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from scrapy import Spider, signals
from scrapy.exceptions import CloseSpider, DropItem, NotConfigured
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler
from twisted.internet import task
from twisted.python.failure import Failure

from crawler import stats as keys
from crawler.exceptions import RejectItem
from crawler.extensions.runrecorder import RunRecorder, command_line_settings
from crawler.items import ProductItem
from crawler.pipelines.sqlite import SQLitePipeline
from crawler.storage import open_store
from tests.test_storage_liveness import gone_pid

if TYPE_CHECKING:
    from pathlib import Path

    from scrapy.crawler import Crawler

pytestmark = pytest.mark.timeout(30)


class ShopSpider(Spider):
    name = "shop"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arguments = {"url": ["http://x/"], "depth": 2}


@dataclass
class Note:
    """An item without a url field."""

    text: str | None = None


def make_crawler(tmp_path: Path, **settings: Any) -> Crawler:
    values = {
        "SQLITE_ENABLED": True,
        "RUN_RECORD": True,  # as `scrapy crawl` sets it
        "SQLITE_PATH": str(tmp_path / "crawler.sqlite"),
        "CRAWL_PROFILE": "fast",
    }
    crawler = get_crawler(ShopSpider, {**values, **settings})
    crawler.spider = ShopSpider.from_crawler(crawler)
    return crawler


def query(tmp_path: Path, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(tmp_path / "crawler.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()


def send(crawler: Crawler, signal: object, **kwargs: Any) -> None:
    for _, result in crawler.signals.send_catch_log(signal, spider=crawler.spider, **kwargs):
        assert not isinstance(result, Failure), result


def test_disabled_store_is_not_configured(tmp_path: Path) -> None:
    with pytest.raises(NotConfigured):
        RunRecorder.from_crawler(make_crawler(tmp_path, SQLITE_ENABLED=False))


def test_run_row_lifecycle_with_items_and_rejects(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path, SQLITE_BATCH_SIZE=100)
    pipeline = SQLitePipeline.from_crawler(crawler)  # built before extensions' signals fire
    pipeline.clock = task.Clock()
    recorder = RunRecorder.from_crawler(crawler)
    pipeline.open_spider()  # as in Scrapy: pipelines open before spider_opened is sent
    send(crawler, signals.spider_opened)
    (run,) = query(tmp_path, "SELECT * FROM runs")
    assert crawler.stats.get_value(keys.RUN_ID) == run["id"] == recorder.run_id
    assert (run["spider"], run["profile"], run["finished_at"]) == ("shop", "fast", None)
    assert json.loads(run["arguments"]) == {"url": ["http://x/"], "depth": 2}
    assert datetime.fromisoformat(run["started_at"]).tzinfo is not None

    pipeline.process_item(ProductItem(sku="A", name="a", price=Decimal("2.50"), url="http://x/a"))
    bad = ProductItem(sku="B", price=Decimal("0.10"), url="http://x/b")
    send(crawler, signals.item_dropped, item=bad, response=None, exception=RejectItem("no name"))
    send(crawler, signals.item_dropped, item=Note("hi"), response=None, exception=RejectItem("x"))
    send(crawler, signals.item_dropped, item=bad, response=None, exception=DropItem("not a reject"))
    for key, value in [("response_received_count", 3), ("item_scraped_count", 1)]:
        crawler.stats.set_value(key, value)
    crawler.stats.set_value(keys.REJECTED, 2)
    crawler.stats.set_value("start_time", datetime(2024, 1, 1, tzinfo=UTC))

    pipeline.close_spider()  # before spider_closed, as in the engine
    assert recorder.store.is_open  # the recorder still holds it
    send(crawler, signals.spider_closed, reason="finished")
    assert not recorder.store.is_open

    (run,) = query(tmp_path, "SELECT * FROM runs")
    assert (run["finish_reason"], run["exit_status"]) == ("finished", 0)
    assert (run["pages"], run["items"], run["rejects"], run["duplicates"]) == (3, 1, 2, 0)
    stats = json.loads(run["stats"])
    assert stats["start_time"] == "2024-01-01T00:00:00+00:00"
    assert stats["sqlite/items_written"] == 1 and stats["sqlite/rejects_written"] == 2
    (item,) = query(tmp_path, "SELECT * FROM products")
    assert item["first_run_id"] == item["last_run_id"] == run["id"]
    rejects = query(tmp_path, "SELECT * FROM rejects ORDER BY id")
    assert [(r["run_id"], r["item_type"], r["reason"]) for r in rejects] == [
        (run["id"], "ProductItem", "no name"),
        (run["id"], "Note", "x"),
    ]
    assert (rejects[0]["url"], rejects[1]["url"]) == ("http://x/b", None)
    assert json.loads(rejects[0]["item"])["price"] == "0.10"  # exact, never a float


def test_recorder_alone_opens_and_closes_the_store(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path, SQLITE_BATCH_SIZE=1)
    recorder = RunRecorder.from_crawler(crawler)
    send(crawler, signals.spider_opened)
    send(crawler, signals.item_dropped, item=Note("x"), response=None, exception=RejectItem("r"))
    send(crawler, signals.spider_closed, reason="store_error")
    (run,) = query(tmp_path, "SELECT * FROM runs")
    assert (run["finish_reason"], run["exit_status"], run["rejects"]) == ("store_error", 1, 0)
    assert len(query(tmp_path, "SELECT * FROM rejects")) == 1
    assert not recorder.store.is_open


def test_unopenable_store_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "taken").write_text("")
    crawler = make_crawler(tmp_path, SQLITE_PATH=str(tmp_path / "taken" / "crawler.sqlite"))
    pipeline = SQLitePipeline.from_crawler(crawler)
    recorder = RunRecorder.from_crawler(crawler)
    for opening in (pipeline.open_spider, lambda: recorder.spider_opened(crawler.spider)):
        with pytest.raises(CloseSpider) as caught:
            opening()
        assert caught.value.reason == "store_error"
    pipeline.close_spider()
    recorder.spider_closed(crawler.spider, reason="store_error")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("SQLite store unavailable: ")
    assert crawler.stats.get_value(keys.RUN_ID) is None


def test_command_line_settings_are_recorded_with_secrets_masked() -> None:
    settings = Settings({"USER_AGENT": "project level, not recorded"}, priority="project")
    given = {
        "CONCURRENT_REQUESTS": 8,
        "HTTP_PROXY": "http://proxy:3128",
        "API_TOKEN": "t0k3n",
        "aws_secret_access_key": "s3cr3t",
        "DB_PASSWORD": "pw",
        "REDIS_URL": "redis://user:pw@localhost:6379/0",
        "DEFAULT_REQUEST_HEADERS": {"Authorization": "Bearer x", "Accept": "text/html"},
        "SESSION_COOKIES": "a=b",
        "HTTPAUTH_USER": "me",
    }
    settings.setdict(given, priority="cmdline")
    recorded = command_line_settings(settings)
    assert "USER_AGENT" not in recorded
    assert recorded["CONCURRENT_REQUESTS"] == 8
    for name in ("HTTP_PROXY", "API_TOKEN", "aws_secret_access_key", "DB_PASSWORD"):
        assert recorded[name] == "***"
    assert recorded["SESSION_COOKIES"] == recorded["HTTPAUTH_USER"] == "***"
    assert recorded["REDIS_URL"] == "redis://***@localhost:6379/0"
    headers = recorded["DEFAULT_REQUEST_HEADERS"]
    assert headers == {"Authorization": "***", "Accept": "text/html"}
    assert "t0k3n" not in json.dumps(recorded) and "pw" not in json.dumps(recorded)


def test_no_run_row_unless_the_command_records_runs(tmp_path: Path) -> None:
    """`scrapy shell`, `fetch`, `parse`, `check` and scripts: RUN_RECORD is off (its default)."""
    with pytest.raises(NotConfigured):
        RunRecorder.from_crawler(make_crawler(tmp_path, RUN_RECORD=False))


# --- worker rows, heartbeat, frontier job, attaching to a parent's run --------------------------
def test_worker_row_heartbeat_and_frontier_job(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path, RUN_HEARTBEAT_SECONDS=10)
    recorder = RunRecorder.from_crawler(crawler)
    recorder.clock = clock = task.Clock()
    crawler.stats.set_value(keys.FRONTIER_JOB_ID, 4)  # the scheduler opens before the spider
    send(crawler, signals.spider_opened)
    send(crawler, signals.engine_started)
    (run,) = query(tmp_path, "SELECT * FROM runs")
    assert run["job_id"] == 4
    (worker,) = query(tmp_path, "SELECT * FROM run_workers")
    assert (worker["run_id"], worker["worker"], worker["pid"]) == (run["id"], 0, os.getpid())
    assert worker["finished_at"] is None and worker["pages"] is None
    crawler.stats.set_value("response_received_count", 5)
    crawler.stats.set_value("item_scraped_count", 3)
    clock.advance(10)
    (beat,) = query(tmp_path, "SELECT * FROM run_workers")
    assert (beat["pages"], beat["items"]) == (5, 3)
    assert beat["heartbeat_at"] > worker["heartbeat_at"]
    send(crawler, signals.spider_closed, reason="finished")
    assert recorder.loop is None and not clock.getDelayedCalls()
    (worker,) = query(tmp_path, "SELECT * FROM run_workers")
    (run,) = query(tmp_path, "SELECT * FROM runs")
    assert (worker["finish_reason"], worker["exit_status"]) == ("finished", 0)
    assert (run["finish_reason"], run["finished_at"] is not None) == ("finished", True)


def test_a_worker_attaches_to_its_parents_run(tmp_path: Path) -> None:
    store = open_store(tmp_path / "crawler.sqlite")
    parent = store.start_run("shop", arguments={}, profile=None, settings={}, job_id=9)
    store.start_worker(parent, 0)  # a sibling that died: the run must not look dead to us
    store.conn.execute("UPDATE run_workers SET pid = ?", (gone_pid(),))
    store.close()
    crawler = make_crawler(tmp_path, WORKER_RUN_ID=parent, WORKER_INDEX=2)
    pipeline = SQLitePipeline.from_crawler(crawler)
    pipeline.clock = task.Clock()
    recorder = RunRecorder.from_crawler(crawler)
    pipeline.open_spider()
    send(crawler, signals.spider_opened)
    assert crawler.stats.get_value(keys.RUN_ID) == recorder.run_id == parent
    pipeline.process_item(ProductItem(sku="A", name="a", price=Decimal("1"), url="http://x/a"))
    pipeline.close_spider()
    send(crawler, signals.spider_closed, reason="finished")
    (run,) = query(tmp_path, "SELECT * FROM runs")  # no row of its own
    assert (run["id"], run["finished_at"], run["finish_reason"]) == (parent, None, None)
    sibling, worker = query(tmp_path, "SELECT * FROM run_workers ORDER BY worker")
    assert (sibling["worker"], sibling["finish_reason"]) == (0, "killed")
    assert (worker["run_id"], worker["worker"], worker["finish_reason"]) == (parent, 2, "finished")
    (item,) = query(tmp_path, "SELECT * FROM products")
    assert item["first_run_id"] == parent


def test_dead_runs_are_marked_killed_when_the_spider_opens(tmp_path: Path) -> None:
    store = open_store(tmp_path / "crawler.sqlite")
    old = store.start_run("shop", arguments={}, profile=None, settings={})
    store.start_worker(old, 0)
    store.conn.execute("UPDATE run_workers SET pid = ?", (gone_pid(),))
    store.close()
    crawler = make_crawler(tmp_path)
    recorder = RunRecorder.from_crawler(crawler)  # kept: signals hold their receivers weakly
    send(crawler, signals.spider_opened)
    assert recorder.run_id == old + 1
    first, second = query(tmp_path, "SELECT * FROM runs ORDER BY id")
    assert (first["finish_reason"], first["exit_status"]) == ("killed", 1)
    assert second["finished_at"] is None
    send(crawler, signals.spider_closed, reason="finished")
