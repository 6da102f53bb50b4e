"""`scrapy ingest SPIDER`: the items of a Redis crawl's stream into one store, exactly once."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from crawler.arguments import comparable
from crawler.frontier.itemstream import FIELD, REJECT, item_entry, other_entry
from crawler.frontier.jobs import job_key
from crawler.items import ProductItem, field_specs
from crawler.itemtables import TableRules, item_values, row_key
from crawler.spiders.products import ProductsSpider
from crawler.storage import open_store
from crawler.storage.liveness import this_host
from tests.redisserver import RedisServer
from tests.support import scrapy_env, scrapy_here

if TYPE_CHECKING:
    from pathlib import Path

    from crawler.demo.server import DemoSite

pytestmark = pytest.mark.timeout(60)

SHOP = "http://shop.test/"
JOB = job_key("products", ProductsSpider.parse_arguments({"start_url": SHOP}))
PREFIX = f"crawler:products:{JOB}"


# every field of a product row, without the bookkeeping of when and by which run it was seen
COLUMNS = ", ".join(f.name for f in field_specs(ProductItem))


def product(sku: str, price: str) -> ProductItem:
    return ProductItem(
        sku=sku, name=f"Lamp {sku}", price=Decimal(price), currency="EUR", in_stock=True,
        url=f"{SHOP}products/{sku}", image_urls=[f"{SHOP}img/{sku}.png"],
    )  # fmt: skip


def entry(item: ProductItem) -> dict[str, str]:
    placement = TableRules.from_settings({}, ProductsSpider).place(item)  # type: ignore[arg-type]
    values = item_values(item)
    at = datetime.now(UTC).isoformat()
    text = item_entry(type(item).__name__, placement, values, row_key(placement, values), at)
    return {FIELD: text}


def ingest(capsys: Any, server: RedisServer, tmp_path: Path, *extra: str) -> Any:
    return scrapy_here(
        capsys, "ingest", "products", "-a", f"start_url={SHOP}",
        "-s", f"REDIS_URL={server.url}", "-s", f"SQLITE_PATH={tmp_path / 'crawler.sqlite'}",
        "-s", f"CSV_EXPORT_DIR={tmp_path / 'out'}", *extra, cwd=tmp_path,
    )  # fmt: skip


def finished_job(
    server: RedisServer, *, workers: int = 2, figures: dict[str, int] | None = None
) -> Any:
    client = server.client()
    client.hset(f"{PREFIX}:meta", mapping={"state": "finished", "seeded_at": "x"})
    for number in range(workers):
        beat = {
            "host": "box", "pid": 100 + number, "started": 1.0 + number, "heartbeat": 2e9,
            "pages": 10 + number, "items": 3, "finished": "finished", "figures": figures or {},
        }  # fmt: skip
        client.hset(f"{PREFIX}:workers", f"box:1:{number}:{100 + number}", json.dumps(beat))
    return client


def test_item_delivered_twice_is_one_row(
    capsys: Any,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    client = finished_job(redis_server)
    items = f"{PREFIX}:items"
    client.xadd(items, entry(product("A1", "10.50")))
    client.xadd(items, entry(product("B2", "3")))
    client.xadd(items, entry(product("A1", "10.50")))  # the same item after a re-lease
    reject = other_entry(REJECT, "ProductItem", {"sku": "C3", "url": f"{SHOP}c3"}, "price: missing")
    client.xadd(items, {FIELD: reject})
    client.xadd(items, {FIELD: "not json"})

    done = ingest(capsys, redis_server, tmp_path)

    assert done.returncode == 0, done.stderr
    assert "ingested run 1 (finished): 3 items, 1 rejects, 0 unplaced, 1 bad entries" in done.stderr
    with open_store(tmp_path / "crawler.sqlite") as store:
        rows = list(store.rows("products"))
        assert sorted((r["sku"], r["price"], r["in_stock"]) for r in rows) == [
            ("A1", "10.50", 1), ("B2", "3", 1),
        ]  # fmt: skip
        assert json.loads(rows[0]["image_urls"]) == [f"{SHOP}img/A1.png"]
        assert [r["reason"] for r in store.rows("rejects")] == ["price: missing"]
        run = store.run(1)
        assert run is not None
        assert (run["finish_reason"], run["exit_status"], run["items"], run["pages"]) == (
            "finished", 0, 3, 21,
        )  # fmt: skip
        workers = store.run_workers(1)
        assert [(w["worker"], w["host"], w["pages"]) for w in workers] == [
            (0, this_host(), 0), (1, "box", 10), (2, "box", 11),
        ]  # fmt: skip
    (csv_file,) = (tmp_path / "out").glob("products-products-*-1.csv")
    with csv_file.open(newline="", encoding="utf-8") as handle:
        assert [r["sku"] for r in csv.DictReader(handle)] == ["A1", "B2"]
    assert client.xpending(items, "ingest")["pending"] == 0
    assert client.xlen(items) == 0  # stored entries are trimmed: Redis holds items in transit
    assert client.hget(f"{PREFIX}:meta", "ingester") is None


def test_entries_of_a_killed_ingester_are_taken_over(
    capsys: Any,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    client = finished_job(redis_server, workers=0)
    items = f"{PREFIX}:items"
    for number in range(5):
        client.xadd(items, entry(product(f"K{number}", "1.25")))
    # an ingester that read three entries and was killed before storing them
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(gone.stdout)
    client.xgroup_create(items, "ingest", id="0")
    client.xreadgroup("ingest", f"{this_host()}:{pid}", {items: ">"}, count=3)
    client.hset(f"{PREFIX}:meta", "ingester",
                json.dumps({"host": this_host(), "pid": pid, "heartbeat": 2e9}))  # fmt: skip
    assert client.xpending(items, "ingest")["pending"] == 3

    done = ingest(capsys, redis_server, tmp_path)

    assert done.returncode == 0, done.stderr
    assert "5 items" in done.stderr and "3 taken over" in done.stderr
    with open_store(tmp_path / "crawler.sqlite") as store:
        assert sorted(r["sku"] for r in store.rows("products")) == [f"K{n}" for n in range(5)]
    assert client.xpending(items, "ingest")["pending"] == 0


def test_a_second_live_ingester_is_refused(
    capsys: Any,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    client = finished_job(redis_server, workers=0)
    client.hset(f"{PREFIX}:meta", "ingester",
                json.dumps({"host": "elsewhere", "pid": 7, "heartbeat": 4e9}))  # fmt: skip
    done = ingest(capsys, redis_server, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: another scrapy ingest (pid 7 on elsewhere) is ingesting {PREFIX}:"
        " one ingester per crawl"
    )


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen[str]:
    handle = log.open("w", encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "scrapy", *args], cwd=cwd, env=scrapy_env(), text=True,
        stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


@pytest.mark.timeout(240)
def test_two_workers_and_one_ingester_store_what_one_process_stores(
    redis_server: RedisServer, demo_site: DemoSite, run_crawl: Any, tmp_path: Path
) -> None:
    plain = run_crawl("products", "-a", f"start_url={demo_site.url}", "-a", "max_products=30")
    assert plain.returncode == 0, plain.stderr[-2000:]
    expected = [dict(row) for row in plain.rows(f"SELECT {COLUMNS} FROM products ORDER BY sku")]
    assert len(expected) >= 25
    urls = tmp_path / "products.txt"
    urls.write_text("".join(f"{row['url']}\n" for row in expected), encoding="utf-8")

    shared = ["-a", f"start_url={demo_site.url}", "-s", f"REDIS_URL={redis_server.url}"]
    seeded = _start(["seed", "products", str(urls), "-c", "parse_product", *shared], tmp_path,
                    tmp_path / "seed.log")  # fmt: skip
    assert seeded.wait(timeout=60) == 0, (tmp_path / "seed.log").read_text()
    store = tmp_path / "ingested.sqlite"
    procs = [
        _start(["crawl", "products", *shared, "-s", "FRONTIER=redis", "-s", "REDIS_ITEMS=True",
                "-s", "CRAWL_PROFILE=fast", "-s", "FRONTIER_LEASE_BATCH=4",
                "-s", f"SQLITE_PATH={tmp_path / f'w{n}.sqlite'}",
                "-s", f"CSV_EXPORT_DIR={tmp_path / f'w{n}'}"], tmp_path, tmp_path / f"w{n}.log")
        for n in range(2)
    ]  # fmt: skip
    procs.append(_start(["ingest", "products", *shared, "-s", f"SQLITE_PATH={store}",
                         "-s", f"CSV_EXPORT_DIR={tmp_path / 'ingested'}"], tmp_path,
                        tmp_path / "ingest.log"))  # fmt: skip
    try:
        codes = [proc.wait(timeout=180) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    logs = {name: (tmp_path / f"{name}.log").read_text()[-3000:] for name in ("w0", "w1", "ingest")}
    assert codes == [0, 0, 0], logs

    with sqlite3.connect(store) as conn:
        conn.row_factory = sqlite3.Row
        got = [dict(row) for row in conn.execute(f"SELECT {COLUMNS} FROM products ORDER BY sku")]
        run = conn.execute("SELECT * FROM runs").fetchone()
        workers = conn.execute("SELECT * FROM run_workers ORDER BY worker").fetchall()
    assert got == expected
    assert (run["finish_reason"], run["exit_status"], run["items"]) == ("finished", 0, len(got))
    assert [w["worker"] for w in workers] == [0, 1, 2]
    assert sum(w["pages"] for w in workers) == run["pages"] >= len(got)
    (csv_file,) = (tmp_path / "ingested").glob("products-products-*.csv")
    with csv_file.open(newline="", encoding="utf-8") as handle:
        assert sorted(r["sku"] for r in csv.DictReader(handle)) == [r["sku"] for r in expected]
    # the workers wrote no CSV and no run of their own: the ingester has the one run
    assert not list(tmp_path.glob("w*/*.csv"))
    for worker_store in tmp_path.glob("w*.sqlite"):  # their fetch state (conditional requests)
        with sqlite3.connect(worker_store) as conn:
            assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


@pytest.mark.timeout(120)
def test_ingester_waits_for_a_restarted_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    client = redis_server.client()
    items = f"{PREFIX}:items"
    client.hset(f"{PREFIX}:meta", "state", "open")
    client.xadd(items, entry(product("R1", "1")))
    store = tmp_path / "crawler.sqlite"
    args = ["ingest", "products", "-a", f"start_url={SHOP}", "-s", f"REDIS_URL={redis_server.url}",
            "-s", f"SQLITE_PATH={store}", "-s", f"CSV_EXPORT_DIR={tmp_path / 'out'}"]  # fmt: skip
    proc = _start(args, tmp_path, tmp_path / "ingest.log")
    try:
        _wait_for(lambda: _skus(store) == ["R1"], proc, tmp_path / "ingest.log")
        redis_server.stop()  # a clean stop: the AOF keeps the stream and the consumer group
        time.sleep(2)
        assert proc.poll() is None  # waiting for Redis, not gone
        redis_server.start()
        client = redis_server.client()
        client.xadd(items, entry(product("R2", "2")))
        client.hset(f"{PREFIX}:meta", "state", "finished")
        assert proc.wait(timeout=60) == 0, (tmp_path / "ingest.log").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = (tmp_path / "ingest.log").read_text()
    assert "Redis lost" in log and "Redis is back" in log
    assert _skus(store) == ["R1", "R2"]
    assert client.xpending(items, "ingest")["pending"] == 0


def _skus(store: Path) -> list[str]:
    if not store.exists():
        return []
    with sqlite3.connect(store) as conn:
        try:
            return [row[0] for row in conn.execute("SELECT sku FROM products ORDER BY sku")]
        except sqlite3.OperationalError:  # no products table yet
            return []


def _wait_for(condition: Any, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


# --- field coverage, samples and the checks across runs of a distributed crawl ---------------
RATING_LINE = (
    "quality: rating coverage 0% vs 100% median of 1 run (QUALITY_MAX_COVERAGE_DROP is 20 points)"
)


def rated(sku: str, rating: float | None) -> ProductItem:
    item = product(sku, "2.50")
    item.rating = rating
    return item


def new_crawl(server: RedisServer, items: list[ProductItem], workers: int = 1, **kw: Any) -> Any:
    """A new crawl of the job (the first worker deletes the finished one's keys), finished."""
    client = server.client()
    client.delete(f"{PREFIX}:meta", f"{PREFIX}:workers")
    client = finished_job(server, workers=workers, **kw)
    for item in items:
        client.xadd(f"{PREFIX}:items", entry(item))
    return client


def run_row(db: Path, run_id: int) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return dict(row)


def coverage_of(db: Path, run_id: int) -> dict[str, tuple[int, int]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT worker, item_table, field, filled, items FROM field_coverage WHERE run_id = ?",
            (run_id,),
        ).fetchall()
    assert {row[0] for row in rows} == {0}  # the ingester's, as worker 0
    return {f"{table}.{name}": (filled, items) for _, table, name, filled, items in rows}


def test_ingested_runs_record_coverage_samples_and_are_checked_across_runs(
    capsys: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    db = tmp_path / "crawler.sqlite"
    new_crawl(redis_server, [rated(f"A{n}", 4.5) for n in range(25)])
    first = ingest(capsys, redis_server, tmp_path, "-s", "SAMPLE_INTERVAL=0.01")
    assert first.returncode == 0, first.stderr
    run = run_row(db, 1)
    assert (run["finish_reason"], run["exit_status"], run["items"]) == ("finished", 0, 25)
    assert json.loads(run["checks"]) == []  # no previous run to compare with
    figures = coverage_of(db, 1)
    assert figures["products.rating"] == figures["products.sku"] == (25, 25)
    assert figures["products.description"] == (0, 25)
    with sqlite3.connect(db) as conn:
        samples = conn.execute(
            "SELECT worker, pages, items, rejects, elapsed FROM run_samples WHERE run_id = 1"
            " ORDER BY rowid"
        ).fetchall()
    # one (at least) while the stream was read empty for a second, and the final one
    assert len(samples) >= 2
    assert [row[:4] for row in samples[-2:]] == [(0, 10, 25, 0)] * 2  # pages: the heartbeats'
    assert [row[4] for row in samples] == sorted(row[4] for row in samples)

    # the shop's redesign: the next crawl's products come without their rating
    new_crawl(redis_server, [rated(f"B{n}", None) for n in range(25)])
    broken = ingest(capsys, redis_server, tmp_path)
    assert broken.returncode == 1, broken.stderr
    assert f"ERROR: run failed: {RATING_LINE}\n" in broken.stderr
    assert "ingested run 2 (quality_failed): 25 items" in broken.stderr
    run = run_row(db, 2)
    assert (run["finish_reason"], run["exit_status"], run["failure"]) == (
        "quality_failed", 1, RATING_LINE,
    )  # fmt: skip
    assert coverage_of(db, 2)["products.rating"] == (0, 25)
    checks = json.loads(run["checks"])
    assert [c["subject"] for c in checks if not c["passed"]] == ["products.rating"]
    assert {"items", "coverage", "rejects"} <= {c["check"] for c in checks}
    stats = json.loads(run["stats"])
    assert (stats["quality/breaches"], stats["item_scraped_count"]) == (1, 25)
    shown = scrapy_here(capsys, "runs", "2", "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    assert "finish       quality_failed (exit status 1)" in shown.stdout
    assert re.search(r"\n    rating +0%  \(median 100% of 1 previous run\)\n", shown.stdout)

    # an ingester run again on the same crawl holds only the rest of its items: no items and
    # coverage compared (its rating is still missing, as in the run it goes on from)
    client = redis_server.client()
    for n in range(25):
        client.xadd(f"{PREFIX}:items", entry(rated(f"C{n}", None)))
    rest = ingest(capsys, redis_server, tmp_path)
    assert rest.returncode == 0, rest.stderr
    run = run_row(db, 3)
    assert {c["check"] for c in json.loads(run["checks"])} <= {"rejects", "errors", "statuses"}
    assert json.loads(run["stats"])["frontier/resumed"] == 1


@pytest.mark.timeout(300)
def test_a_broken_field_fails_the_ingest_of_a_distributed_crawl(
    capsys: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    from crawler.demo.server import DemoSite
    from tests.support import run_crawl_in

    db = tmp_path / "ingested.sqlite"
    shared = ["-s", f"REDIS_URL={redis_server.url}"]
    with DemoSite(slow_seconds=0.3) as shop:
        arguments = ["-a", f"start_url={shop.url}", "-a", "max_products=30"]

        def crawl_and_ingest(name: str) -> Any:
            (tmp_path / name).mkdir()
            worker = run_crawl_in(
                tmp_path / name, "products", *arguments, *shared, "-s", "FRONTIER=redis",
                "-s", "REDIS_ITEMS=True",
            )  # fmt: skip
            assert worker.returncode == 0, worker.stderr[-3000:]
            return scrapy_here(
                capsys, "ingest", "products", *arguments, *shared, "-s", f"SQLITE_PATH={db}",
                "-s", f"CSV_EXPORT_DIR={tmp_path / 'out'}", cwd=tmp_path,
            )  # fmt: skip

        first = crawl_and_ingest("w1")
        assert first.returncode == 0, first.stderr
        run = run_row(db, 1)
        n = run["items"]
        assert n >= 25 and run["exit_status"] == 0
        assert coverage_of(db, 1)["products.rating"] == (n, n)

        shop.broken_fields = frozenset({"rating"})  # the shop's redesign
        broken = crawl_and_ingest("w2")
        (tmp_path / "plain").mkdir()  # the same crawl in one process, without Redis
        plain = run_crawl_in(tmp_path / "plain", "products", *arguments)
    assert broken.returncode == 1, broken.stderr
    assert f"ERROR: run failed: {RATING_LINE}\n" in broken.stderr
    run = run_row(db, 2)
    assert (run["finish_reason"], run["exit_status"], run["failure"]) == (
        "quality_failed", 1, RATING_LINE,
    )  # fmt: skip
    m = run["items"]
    assert coverage_of(db, 2)["products.rating"] == (0, m)
    # the workers' heartbeats carry their responses: the error and status checks ran
    checks = {c["subject"]: c for c in json.loads(run["checks"])}
    assert checks["error ratio"]["passed"] and checks["2xx"]["passed"], checks
    assert json.loads(run["stats"])["health/responses"] >= m
    # an ingested run is recorded as a crawl of the same spider and arguments in one process
    assert plain.returncode == 0, plain.stderr[-3000:]
    (alone,) = plain.rows("SELECT spider, arguments FROM runs")
    for run_id in (1, 2):
        row = run_row(db, run_id)
        assert (row["spider"], comparable(json.loads(row["arguments"]))) == (
            alone["spider"], comparable(json.loads(alone["arguments"])),
        )  # fmt: skip


def test_the_workers_response_figures_are_checked_across_runs(
    capsys: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    ok = {"health/responses": 20, "downloader/response_status_count/200": 20}
    new_crawl(redis_server, [rated(f"A{n}", 4.5) for n in range(25)], workers=2, figures=ok)
    first = ingest(capsys, redis_server, tmp_path)
    assert first.returncode == 0, first.stderr
    stats = json.loads(run_row(tmp_path / "crawler.sqlite", 1)["stats"])
    assert stats["health/responses"] == 40  # the two workers' summed
    assert stats["downloader/response_status_count/200"] == 40

    # the site answers half the pages with 404 now
    failing = {
        "health/responses": 20, "health/error_responses": 10, "crawl/fetch_errors": 10,
        "downloader/response_status_count/200": 10, "downloader/response_status_count/404": 10,
        "item_scraped_count": 999,  # not a response figure: never taken from a heartbeat
    }  # fmt: skip
    new_crawl(redis_server, [rated(f"B{n}", 4.5) for n in range(25)], workers=2, figures=failing)
    second = ingest(capsys, redis_server, tmp_path)
    assert second.returncode == 1, second.stderr
    errors = [line for line in second.stderr.splitlines() if line.startswith("ERROR: ")]
    assert errors == [
        "ERROR: run failed: quality: error ratio 50% vs 0% median of 1 run"
        " (QUALITY_MAX_ERROR_RATIO_RISE is 10 points)",
        "ERROR: run failed: quality: 2xx share 50% vs 100% median of 1 run"
        " (QUALITY_MAX_STATUS_SHIFT is 20 points)",
        "ERROR: run failed: quality: 4xx share 50% vs 0% median of 1 run"
        " (QUALITY_MAX_STATUS_SHIFT is 20 points)",
    ]
    run = run_row(tmp_path / "crawler.sqlite", 2)
    assert (run["finish_reason"], run["items"]) == ("quality_failed", 25)
    assert json.loads(run["stats"])["item_scraped_count"] == 25


def test_a_bad_quality_setting_is_one_error_line(capsys: Any, tmp_path: Path) -> None:
    done = scrapy_here(
        capsys, "ingest", "products", "-a", f"start_url={SHOP}", "-s", "QUALITY_CHECKS=bogus",
        "-s", "REDIS_URL=redis://127.0.0.1:1/0", "-s", f"SQLITE_PATH={tmp_path / 'c.sqlite'}",
        cwd=tmp_path,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (
        2, "error: QUALITY_CHECKS: unknown check 'bogus' (known: items, coverage, errors,"
        " statuses, rejects)\n",
    )  # fmt: skip
    assert not list(tmp_path.iterdir())  # nothing opened
