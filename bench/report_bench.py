"""The HTML run report's size and build time for a 10,000-item and a 1,000,000-item run.

Builds one store (fast synthetic inserts, straight into the tables a crawl fills: product rows,
1% rejects with a snapshot for some, 0.5% failed pages over 200 hosts, samples every 5 s from
four workers, field coverage per worker, and three earlier runs of the same spider to compare
coverage with), then times ``scrapy report RUN -o FILE`` in a subprocess for each run (process
start to exit, and the build alone as the report module measures it) and reports the file size:

    .venv/bin/python bench/report_bench.py [--items 10000 --items 1000000] [--workdir DIR]

The report reads aggregates (GROUP BY over the run's rejects and failed pages, the samples in at
most 600 time buckets), never the item rows: its size stays flat and its time grows only with
the rejects and failures it counts.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.items import ProductItem  # noqa: E402
from crawler.stats import COVERAGE_OTHER, FETCH_KINDS, HOSTS, LATENCY_MS, RunCounts  # noqa: E402
from crawler.storage import open_store  # noqa: E402
from crawler.storage.schema import ItemTable, transaction  # noqa: E402

WORKERS = 4
ITEMS_PER_SECOND = 200  # the synthetic crawl's pace: 1M items is about 83 minutes of samples
FIELDS = ("sku", "name", "price", "currency", "in_stock", "rating", "category", "description")
REASONS = (
    "price: missing",
    "name: missing",
    "currency: 'XYZ' is not a currency",
    "price: '12,3O' is not a number",
    "url: not http(s)",
)
ERRORS = ("http_404", "http_500", "http_503", "TimeoutError", "DNSLookupError", "ConnectionRefused")


def _stats(items: int) -> dict[str, object]:
    pages = items + items // 100
    hosts = {
        f"host{h:03d}.test": {"pages": pages // 200, "errors": items // 40_000, "bytes": pages * 50}
        for h in range(50)
    }
    hosts["(other)"] = {"pages": pages // 2, "errors": 0, "bytes": pages * 20}
    return {
        "response_received_count": pages,
        "item_scraped_count": items,
        "downloader/response_status_count/200": pages - items // 200,
        "downloader/response_status_count/404": items // 400,
        "downloader/response_status_count/503": items // 400,
        LATENCY_MS: {
            "50": pages // 2,
            "100": pages // 4,
            "200": pages // 8,
            "500": pages // 16,
            "1000": 10,
            "2000": 5,
            "5000": 1,
            "10000": 0,
            "inf": 0,
        },
        HOSTS: hosts,
        FETCH_KINDS: {"http": pages - pages // 10, "browser": pages // 10},
    }


def add_run(db: Path, items: int, first_item: int, *, detail: bool) -> int:
    """A finished run of ``items`` items; ``detail``: with product rows, rejects, failures."""
    store = open_store(db)
    try:
        run_id = store.start_run(
            "products", arguments={"start_url": "http://shop.test/"}, profile="fast", settings={}
        )
        conn = store.conn
        table = ItemTable.for_class(ProductItem)
        table.ensure(conn)
        with transaction(conn):
            if detail:
                _items(conn, run_id, items, first_item)
                _rejects(conn, run_id, items // 100)
                _failures(conn, run_id, items // 200)
            _samples(conn, run_id, items)
            _coverage(conn, run_id, items)
        store.finish_run(
            run_id,
            reason="finished",
            counts=RunCounts(items + items // 100, items, items // 100, 0, items // 200),
            exit_status=0,
            stats=_stats(items),
        )
        return run_id
    finally:
        store.close()


def _items(conn: sqlite3.Connection, run_id: int, items: int, first: int) -> None:
    now = "2026-12-01T00:00:00+00:00"
    rows = (
        (
            f"SKU-{n:09d}",
            f"Product {n}",
            f"{n % 1000}.99",
            "EUR",
            n % 4 != 0,
            (n % 50) / 10,
            "Books",
            f"Item {n}: a sturdy, well made thing.",
            f"http://shop.test/p/{n}",
            "[]",
            "http",
            run_id,
            run_id,
            now,
            now,
            now,
            f"{n:032x}",
        )
        for n in range(first, first + items)
    )
    conn.executemany(
        "INSERT INTO products (sku, name, price, currency, in_stock, rating, category,"
        " description, url, image_urls, fetched_with, first_run_id, last_run_id, first_seen_at,"
        " last_seen_at, changed_at, row_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )


def _rejects(conn: sqlite3.Connection, run_id: int, count: int) -> None:
    conn.executemany(
        "INSERT INTO rejects (run_id, item_type, item, reason, url, snapshot, created_at)"
        " VALUES (?, 'ProductItem', '{}', ?, ?, ?, '2026-12-01T00:00:00+00:00')",
        (
            (
                run_id,
                REASONS[n % len(REASONS)],
                f"http://shop.test/r/{n}",
                f"run-{run_id}/{n:04d}-reject.html" if n < 100 else None,
            )
            for n in range(count)
        ),
    )


def _failures(conn: sqlite3.Connection, run_id: int, count: int) -> None:
    conn.executemany(
        "INSERT INTO failed_pages (run_id, url, host, status, error, snapshot, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, '2026-12-01T00:00:00+00:00')",
        (
            (
                run_id,
                f"http://host{n % 200:03d}.test/f/{n}",
                f"host{n % 200:03d}.test",
                int(ERRORS[n % 6][5:]) if ERRORS[n % 6].startswith("http_") else None,
                ERRORS[n % 6],
                f"run-{run_id}/{n:04d}-{ERRORS[n % 6]}.html" if n < 100 else None,
            )
            for n in range(count)
        ),
    )


def _samples(conn: sqlite3.Connection, run_id: int, items: int) -> None:
    seconds = max(10, items // ITEMS_PER_SECOND)
    share = items // WORKERS
    rows = []
    for worker in range(WORKERS):
        for t in range(0, seconds + 1, 5):
            done = share * t // seconds
            rows.append(
                (
                    run_id,
                    worker,
                    t + worker * 0.3,
                    done + done // 100,
                    done,
                    done // 200,
                    done // 100,
                    done * 5000,
                    8,
                    max(0, share - done),
                    done // 10,
                )
            )
    conn.executemany(
        "INSERT INTO run_samples (run_id, worker, at, elapsed, pages, items, errors, rejects,"
        " bytes, in_flight, queued, rendered)"
        " VALUES (?, ?, '2026-12-01T00:00:00+00:00', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _coverage(conn: sqlite3.Connection, run_id: int, items: int) -> None:
    share = items // WORKERS
    rows = [
        (run_id, w, "products", name, share - (share // 20 if name == "rating" else 0), share)
        for w in range(WORKERS)
        for name in (*FIELDS, COVERAGE_OTHER)
    ]
    conn.executemany("INSERT INTO field_coverage VALUES (?, ?, ?, ?, ?, ?)", rows)


def time_report(db: Path, run_id: int, output: Path) -> tuple[float, float]:
    """``scrapy report`` in a subprocess: wall seconds (process start to exit), and the build
    alone (the same code in this process, after a warm-up, so imports are not counted)."""
    from crawler.report import ReportConfig, build_run_report

    env = {
        "SCRAPY_SETTINGS_MODULE": "crawler.settings",
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
    }
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "scrapy", "report", str(run_id), "-o", str(output), "--db", str(db)],
        cwd=output.parent,
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    config = ReportConfig(db=str(db), report_dir=str(output.parent))
    started = time.perf_counter()
    build_run_report(config, run_id, str(output))
    return wall, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, action="append", help="items of a run (repeatable)")
    parser.add_argument("--workdir", type=Path, help="where the store goes (default: a temp dir)")
    args = parser.parse_args()
    sizes = args.items or [10_000, 1_000_000]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="report-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "crawler.sqlite"
    db.unlink(missing_ok=True)
    first = 0
    runs = []
    for items in sizes:
        started = time.perf_counter()
        for _ in range(3):  # earlier runs: the coverage comparison has a median to show
            add_run(db, items, 0, detail=False)
        runs.append((items, add_run(db, items, first, detail=True)))
        first += items
        print(
            f"built run of {items:,} items in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    with sqlite3.connect(db) as conn:
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("products", "rejects", "failed_pages", "run_samples")
        }
    print(f"store: {db} ({db.stat().st_size / 1e6:,.0f} MB; rows: {json.dumps(counts)})")
    print(
        f"{'items':>10}  {'rejects':>8}  {'failed':>7}  {'samples':>7}  {'report KB':>9}  "
        f"{'command s':>9}  {'build s':>7}"
    )
    for items, run_id in runs:
        output = workdir / f"run-{run_id}.html"
        wall, build = time_report(db, run_id, output)
        samples = (max(10, items // ITEMS_PER_SECOND) // 5 + 1) * WORKERS
        print(
            f"{items:>10,}  {items // 100:>8,}  {items // 200:>7,}  {samples:>7,}  "
            f"{output.stat().st_size / 1024:>9,.0f}  {wall:>9.2f}  {build:>7.2f}"
        )


if __name__ == "__main__":
    main()
