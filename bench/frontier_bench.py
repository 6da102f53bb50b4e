"""The durable frontier at scale: ``python bench/frontier_bench.py --requests 1000000``.

Queues N requests in a frontier table the way a crawl does (``Request`` → JSON → batched
``INSERT``, the duplicate check per request), then leases and finishes them in the crawl's
batches: a sample of 20,000 at the start and another at the end of the queue, with the rest
marked done in between. Prints the insert rate, the lease+finish rate at the start and the end
(flat when the pop cost does not grow with the frontier), the store's size and the peak RSS of
the process (the frontier lives in SQLite, not in memory).
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import tempfile
import time
from pathlib import Path

from scrapy import Request

from crawler.frontier import codec
from crawler.storage import frontier as sql
from crawler.storage import open_store
from crawler.storage.schema import transaction

BATCH = 1000  # requests written per transaction (the scheduler's WRITE_BATCH)
LEASE = 32  # FRONTIER_LEASE_BATCH
SAMPLE = 20_000


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def queue(conn, job: int, count: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    rows: list[sql.NewRequest] = []
    for n in range(count):
        request = Request(f"http://127.0.0.1:8080/products/{n}", meta={"depth": 1})
        fingerprint = hashlib.sha1(request.url.encode()).hexdigest()
        sql.find(conn, job, fingerprint)  # the duplicate check the scheduler makes
        rows.append(sql.NewRequest(fingerprint, request.url, 0, 1, codec.encode(request, None)[0]))
        if len(rows) == BATCH:
            with transaction(conn):
                sql.insert(conn, job, rows)
            rows.clear()
    with transaction(conn):
        sql.insert(conn, job, rows)
    return count / (time.perf_counter() - started)


def drain(conn, job: int, count: int) -> float:  # type: ignore[no-untyped-def]
    """Lease, decode and finish ``count`` requests in the crawl's batches; requests/s."""
    started, taken = time.perf_counter(), 0
    while taken < count:
        with transaction(conn):
            rows, _ = sql.lease(conn, job, owner="bench", limit=LEASE, deadline=9e9, max_attempts=3)
        if not rows:
            break
        for row in rows:
            codec.decode(row.request or "", None)
        with transaction(conn):
            sql.finish(conn, job, [row.id for row in rows], [])
        taken += len(rows)
    return taken / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frontier.sqlite"
        with open_store(path) as store:
            conn = store.conn
            job = sql.create_job(conn, "bench", "bench", "2026-12-01T00:00:00+00:00")
            base = rss_mb()
            inserted = queue(conn, job, args.requests)
            after_queue = rss_mb()
            first = drain(conn, job, SAMPLE)
            with transaction(conn):  # the middle of the crawl, done in one statement
                conn.execute(
                    "UPDATE frontier SET state = 'done', request = NULL WHERE job_id = ?"
                    " AND state = 'queued' AND id <= (SELECT MAX(id) FROM frontier) - ?",
                    (job, SAMPLE),
                )
            last = drain(conn, job, SAMPLE)
            size = path.stat().st_size / 1e6
        print(f"requests queued:       {args.requests:,}")
        print(f"queue rate:            {inserted:,.0f} requests/s (JSON, duplicate check, batches)")
        print(f"lease+finish at start: {first:,.0f} requests/s")
        print(f"lease+finish at end:   {last:,.0f} requests/s ({last / first:.2f}x the start)")
        print(f"store size:            {size:,.0f} MB")
        print(f"peak RSS:              {rss_mb():,.0f} MB ({base:,.0f} MB before queueing,")
        print(f"                       {after_queue:,.0f} MB once all were queued)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
