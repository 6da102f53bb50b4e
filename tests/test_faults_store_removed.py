"""D6, the store removed or replaced mid-crawl: real `products` crawls of the demo shop whose
SQLite file is deleted (or replaced by another file) after the first batches are committed.

Nothing already collected may be lost and the run may not report success: the crawl stops with
``store_error`` (exit status 1), and one ERROR line names the recovery file that holds every row
of the removed store, this run's ``runs`` row included.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from scrapy import Spider, signals
from scrapy.utils.test import get_crawler
from twisted.internet import task
from twisted.python.failure import Failure

from crawler.demo.server import DemoSite
from crawler.extensions.runrecorder import RunRecorder
from crawler.items import ProductItem
from crawler.pipelines.sqlite import SQLitePipeline
from crawler.stats import recorded_verdict
from crawler.storage import open_store
from tests.support import CrawlResult, FakeEngine

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

pytestmark = pytest.mark.timeout(150)

BATCH = 20  # SQLITE_BATCH_SIZE: many batches in a run, the first one soon


def product_rows(db: Path) -> int:
    """Products committed to ``db`` so far (0 while it or its table does not exist yet)."""
    if not db.exists():
        return 0
    with (
        contextlib.suppress(sqlite3.Error),
        contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn,
    ):
        return int(conn.execute("SELECT count(*) FROM products").fetchone()[0])
    return 0


@contextlib.contextmanager
def when_committed(db: Path, rows: int, action: Callable[[], object]) -> Iterator[list[bool]]:
    """Run ``action`` once ``db`` holds ``rows`` products (polled from a thread)."""
    done: list[bool] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if product_rows(db) >= rows:
                action()
                done.append(True)
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield done
    finally:
        stop.set()
        watcher.join(10)


def crawl_shop(run_crawl: Any, demo_site: DemoSite) -> CrawlResult:
    result: CrawlResult = run_crawl(
        "products",
        "-a",
        f"start_url={demo_site.url}",
        "-s",
        f"SQLITE_BATCH_SIZE={BATCH}",
        timeout=120,
    )
    return result


def recovered(db: Path) -> tuple[Path, dict[str, Any], int]:
    """The one recovery file beside ``db``: its path, its runs row and its product count."""
    (path,) = sorted(db.parent.glob(f"{db.name}.recovered-*.sqlite"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (run,) = [dict(row) for row in conn.execute("SELECT * FROM runs")]
        products = int(conn.execute("SELECT count(*) FROM products").fetchone()[0])
    return path, run, products


def assert_nothing_lost(result: CrawlResult) -> None:
    assert result.returncode == 1, result.stderr[-3000:]
    path, run, products = recovered(result.db)
    errors = [line for line in result.stderr.splitlines() if " ERROR: " in line]
    removed = [line for line in errors if "was removed or replaced during the crawl" in line]
    assert len(removed) == 1, errors
    assert str(result.db) in removed[0] and str(path) in removed[0], removed[0]
    # the runs row lived in the removed store: it is finished in the recovery file
    assert (run["finish_reason"], run["exit_status"]) == ("store_error", 1)
    assert run["finished_at"] is not None
    stats = json.loads(run["stats"])
    assert products == run["items"] == stats["item_scraped_count"] == stats["sqlite/items_written"]
    assert BATCH < products < 998  # stopped early, after the first batches
    # no orphaned write-ahead log (its frames belong to the removed file) is left at the path
    assert not Path(f"{result.db}-wal").exists()
    assert not Path(f"{result.db}-shm").exists()


def test_store_deleted_mid_crawl_is_saved_and_fails(
    demo_site: DemoSite, run_crawl: Any, tmp_path: Path
) -> None:
    db = tmp_path / "crawler.sqlite"
    with when_committed(db, BATCH, db.unlink) as deleted:
        result = crawl_shop(run_crawl, demo_site)
    assert deleted, result.stderr[-3000:]
    assert_nothing_lost(result)
    assert not db.exists()  # nothing wrote a new, partial store at the path


def test_store_replaced_mid_crawl_is_left_alone(
    demo_site: DemoSite, run_crawl: Any, tmp_path: Path
) -> None:
    db = tmp_path / "crawler.sqlite"
    other = tmp_path / "other.sqlite"
    with contextlib.closing(sqlite3.connect(other)) as conn, conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")

    with when_committed(db, BATCH, lambda: other.replace(db)) as replaced:
        result = crawl_shop(run_crawl, demo_site)
    assert replaced, result.stderr[-3000:]
    assert_nothing_lost(result)
    # the file put in place is untouched: not written to, no rows of the crawl replayed into it
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
        assert tables == ["notes"]
        assert conn.execute("SELECT text FROM notes").fetchall() == [("mine",)]


# --- the same, component by component (no reactor) ---------------------------------------------
class ShopSpider(Spider):
    name = "shop"


def make_crawler(tmp_path: Path) -> Crawler:
    settings = {
        "SQLITE_ENABLED": True,
        "RUN_RECORD": True,
        "SQLITE_PATH": str(tmp_path / "crawler.sqlite"),
    }
    crawler = get_crawler(ShopSpider, {**settings, "SQLITE_BATCH_SIZE": 2})
    crawler.spider = ShopSpider.from_crawler(crawler)
    return crawler


def product(sku: str) -> ProductItem:
    return ProductItem(sku=sku, name="n", price=Decimal("1.50"), url=f"http://x/{sku}")


def send(crawler: Crawler, signal: object, **kwargs: Any) -> None:
    for _, result in crawler.signals.send_catch_log(signal, spider=crawler.spider, **kwargs):
        assert not isinstance(result, Failure), result


@pytest.mark.timeout(30)
def test_removed_write_ahead_log_is_noticed(tmp_path: Path) -> None:
    db = tmp_path / "crawler.sqlite"
    store = open_store(db, batch_size=2)
    for sku in "AB":
        store.add_item(ProductItem, asdict(product(sku)))
    assert store.flush() and store.replaced is None
    Path(f"{db}-wal").unlink()  # the committed batch lives only in the open, deleted log
    store.add_item(ProductItem, asdict(product("C")))
    assert store.flush()
    assert store.replaced is not None and "crawler.sqlite-wal" in str(store.replaced)
    store.close()
    (path,) = tmp_path.glob("crawler.sqlite.recovered-*.sqlite")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert [r[0] for r in conn.execute("SELECT sku FROM products ORDER BY sku")] == [
            "A",
            "B",
            "C",
        ]


@pytest.mark.timeout(30)
def test_the_timer_stops_a_crawl_whose_store_is_removed(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path)
    assert crawler.spider is not None
    engine = FakeEngine(crawler.spider)
    crawler.engine = engine  # type: ignore[assignment]
    pipeline = SQLitePipeline.from_crawler(crawler)
    pipeline.clock = task.Clock()
    pipeline.open_spider()
    (tmp_path / "crawler.sqlite").unlink()
    assert isinstance(pipeline.clock, task.Clock)
    pipeline.clock.advance(5)  # no item arrives: the timer alone notices
    assert engine.reasons == ["store_error"]
    pipeline.close_spider()
    assert len(list(tmp_path.glob("crawler.sqlite.recovered-*.sqlite"))) == 1


@pytest.mark.timeout(30)
def test_store_removed_as_the_crawl_closes_still_fails_the_run(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path)
    pipeline = SQLitePipeline.from_crawler(crawler)
    pipeline.clock = task.Clock()
    recorder = RunRecorder.from_crawler(crawler)  # kept: signals hold it weakly
    pipeline.open_spider()
    send(crawler, signals.spider_opened)
    for sku in "ABC":
        pipeline.process_item(product(sku))
    (tmp_path / "crawler.sqlite").unlink()
    pipeline.close_spider()  # the close reason is already "finished"
    send(crawler, signals.spider_closed, reason="finished")
    assert recorded_verdict(crawler.stats.get_stats(), "finished").exit_status == 1
    _, run, products = recovered(tmp_path / "crawler.sqlite")
    assert (run["finish_reason"], run["exit_status"], products) == ("store_error", 1, 3)
    assert "crawler.sqlite was removed or replaced" in run["failure"]
    assert not recorder.store.is_open and not Path(f"{recorder.store.config.path}-wal").exists()
