"""Three Redis workers on a large URL list, one killed half-way: ``python -m bench.redis_kill_run``.

The check of issue 14's "done when" at scale: the bench site's latency server (200 ms a page),
``--urls`` URLs (100,000 by default) loaded with ``scrapy seed``, three ``scrapy crawl bench -s
FRONTIER=redis`` workers sharing one SQLite store, the second one killed with SIGKILL once half
the URLs are done. Prints the wall time and whether the store holds every URL exactly once (as
one process stores them: the pages without a valid price in ``rejects``, the others as rows).
Exit status 1 when it does not. The killed worker's leases come back when they expire
(``FRONTIER_LEASE_SECONDS``, 300 s).
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.contestants import ROOT
from bench.scale_bench import Redis, crawl_command
from bench.servers import LatencyServer
from bench.site import build_site, expected_complete

WORKERS = 3


def done_count(redis: Redis, prefix: str) -> int:
    """Requests of the job marked done (the seen hash holds each fingerprint's state)."""
    keys = redis.cli("--scan", "--pattern", f"{prefix}*:seen").split()
    if not keys:
        return 0
    script = "local n=0 for _,v in ipairs(redis.call('HVALS', KEYS[1])) do if v=='done' then n=n+1 end end return n"  # noqa: E501
    return int(redis.cli("EVAL", script, "1", keys[0]) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=100_000)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="redis-kill-"))
    site = build_site(work, min(args.urls, 20_000))
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    with LatencyServer(site.root, 0.2) as server, Redis() as redis:
        urls = site.url_file(server.base, args.urls, "urls")
        shared = [f"-sREDIS_URL={redis.url}"]
        seed = [sys.executable, "-m", "scrapy", "seed", "bench", str(urls), f"-aurls={urls}",
                "-sSPIDER_MODULES=bench.spider", *shared]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(seed, cwd=ROOT, env=env, check=True)
        command = crawl_command(urls, work, "-sFRONTIER=redis", *shared,
                                f"-sCONCURRENT_REQUESTS_PER_DOMAIN={100 // WORKERS}",
                                f"-sCONCURRENT_REQUESTS={100 // WORKERS}")  # fmt: skip
        logs = [(work / f"worker-{k}.log").open("w") for k in range(WORKERS)]
        procs = [
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log) for log in logs
        ]
        killed_at = None
        while any(p.poll() is None for p in procs):
            if killed_at is None and done_count(redis, "crawler:bench:") >= args.urls // 2:
                procs[1].send_signal(signal.SIGKILL)
                killed_at = time.perf_counter() - started
                print(f"worker 1 killed at {killed_at:.0f} s", flush=True)
            time.sleep(1)
        wall = time.perf_counter() - started
        with sqlite3.connect(work / "crawler.sqlite") as conn:
            rows, distinct = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT url) FROM bench_products"
            ).fetchone()
            rejects = conn.execute("SELECT COUNT(DISTINCT url) FROM rejects").fetchone()[0]
        statuses = [p.returncode for p in procs]
    wanted = expected_complete(args.urls)  # pages 500 and 777 of each thousand: no valid price
    print(f"{args.urls:,} URLs, {WORKERS} workers, one killed half-way: {wall:.0f} s")
    print(f"worker exit statuses: {statuses} (worker 1 killed)")
    print(
        f"store: {rows:,} rows, {distinct:,} distinct URLs (wanted {wanted:,} once each),"
        f" {rejects:,} rejected (wanted {args.urls - wanted:,})"
    )
    ok = rows == distinct == wanted and rejects == args.urls - wanted
    ok = ok and statuses[0] == statuses[2] == 0
    print("OK: every URL stored exactly once" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
