"""Recrawl benchmark: a first full ``products`` crawl of the demo shop against its recrawls.

    .venv/bin/python -m bench.recrawl_bench [--repeat 3] [--changed 10]

Each repetition starts from an empty store and runs ``scrapy crawl products`` three times
against one demo site: *first* (every page new), *recrawl* (nothing changed: product pages
answer 304) and *changed* (after ``--changed`` products were revised). Printed per crawl: wall
time of the process, the crawl's own elapsed time (without start-up), 304s, items and bytes
downloaded; then the median ratios recrawl/first and changed/first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from crawler.demo.server import DemoSite

ROOT = Path(__file__).resolve().parent.parent
# A recrawl yields few items by design: count its 304s as items for the health check.
HEALTH = "HEALTH_ITEM_STATS=item_scraped_count,incremental/not_modified"


@dataclass(frozen=True)
class Crawl:
    wall: float
    cpu: float  # user + system seconds of the crawl process: steadier than wall on a busy box
    elapsed: float
    not_modified: int
    items: int
    bytes: int


def crawl(site: DemoSite, workdir: Path) -> Crawl:
    db = workdir / "crawler.sqlite"
    command = [
        sys.executable, "-m", "scrapy", "crawl", "products", "-a", f"start_url={site.url}",
        "-s", f"SQLITE_PATH={db}", "-s", f"CSV_EXPORT_DIR={workdir / 'out'}",
        "-s", "CRAWL_PROFILE=fast", "-s", "LOG_LEVEL=WARNING", "-s", HEALTH,
    ]  # fmt: skip
    env = dict(os.environ, SCRAPY_SETTINGS_MODULE="crawler.settings", PYTHONPATH=str(ROOT))
    cpu_before, started = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"crawl failed ({done.returncode}):\n{done.stderr[-3000:]}")
    with sqlite3.connect(db) as conn:
        (raw,) = conn.execute("SELECT stats FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    stats = json.loads(raw)
    return Crawl(
        wall=wall,
        cpu=cpu,
        elapsed=float(stats["elapsed_time_seconds"]),
        not_modified=int(stats.get("incremental/not_modified", 0)),
        items=int(stats.get("item_scraped_count", 0)),
        bytes=int(stats.get("downloader/response_bytes", 0)),
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def repetition(changed: int, slow_seconds: float) -> dict[str, Crawl]:
    with tempfile.TemporaryDirectory() as tmp, DemoSite(slow_seconds=slow_seconds) as site:
        runs = {"first": crawl(site, Path(tmp)), "recrawl": crawl(site, Path(tmp))}
        site.change_products(range(1, 1000, 1000 // changed)[:changed])
        runs["changed"] = crawl(site, Path(tmp))
        return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--changed", type=int, default=10, help="products revised before run 3")
    parser.add_argument("--slow-seconds", type=float, default=0.05, help="the slow product")
    args = parser.parse_args()
    results = []
    print("run crawl     wall s  cpu s crawl s  304s items    KiB")
    for number in range(1, args.repeat + 1):
        runs = repetition(args.changed, args.slow_seconds)
        results.append(runs)
        for name, c in runs.items():
            print(
                f"{number:>3} {name:<8} {c.wall:7.2f} {c.cpu:6.2f} {c.elapsed:7.2f}"
                f" {c.not_modified:5d}"
                f" {c.items:5d} {c.bytes / 1024:6.0f}"
            )
    for name in ("recrawl", "changed"):
        wall = statistics.median(r[name].wall / r["first"].wall for r in results)
        cpu = statistics.median(r[name].cpu / r["first"].cpu for r in results)
        own = statistics.median(r[name].elapsed / r["first"].elapsed for r in results)
        size = statistics.median(r[name].bytes / r["first"].bytes for r in results)
        print(
            f"{name}/first (median): wall {wall:.2f}, cpu {cpu:.2f}, crawl {own:.2f},"
            f" bytes {size:.2f}"
        )


if __name__ == "__main__":
    main()
