"""Export throughput and memory: `scrapy export` of a large products table, per format.

Builds a store of N product rows (written through ``crawler.storage.Store``, as a crawl writes
them; cached in the work dir between runs), then runs ``scrapy export products -o FILE`` in a
subprocess for CSV, JSON Lines and Parquet, and reports the export's own time and rows/s,
rows per CPU second (less sensitive to a busy machine; start-up CPU subtracted), the peak RSS of
the export process (its ``VmHWM``, read every 20 ms; ``ru_maxrss`` would include the RSS of
this process, which the child inherits until ``exec``). Two sizes show that memory does not grow
with the rows:

    .venv/bin/python bench/export_bench.py --rows 100000 --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.items import ProductItem  # noqa: E402
from crawler.stats import RunCounts  # noqa: E402
from crawler.storage import open_store  # noqa: E402

FORMATS = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}
CATEGORIES = ("Books", "Garden", "Kitchen", "Toys", "Tools", "Music", "Sports", "Outdoor")
_SECONDS = re.compile(r" in ([0-9.]+) s")
_HWM = re.compile(r"^VmHWM:\s+(\d+) kB", re.MULTILINE)


def product(n: int) -> dict[str, Any]:
    return {
        "sku": f"SKU-{n:08d}",
        "name": f"Product {n} – Größe {n % 50} «{CATEGORIES[n % 8]}»",
        "price": Decimal(n % 100_000) / 100 + Decimal("0.99"),
        "currency": ("USD", "EUR", "GBP")[n % 3],
        "in_stock": n % 4 != 0,
        "rating": round((n % 50) / 10, 1),
        "category": CATEGORIES[n % 8],
        "description": f"Item {n}: a sturdy, well made thing. " * 4,
        "url": f"http://127.0.0.1:8000/products/{n}",
        "image_urls": [f"http://127.0.0.1:8000/img/{n}-{k}.jpg" for k in (1, 2)],
    }


def build_store(db: Path, rows: int) -> None:
    """A store with ``rows`` products (reused when it already has them)."""
    if db.exists():
        with sqlite3.connect(db) as conn:
            try:
                if conn.execute("SELECT count(*) FROM products").fetchone()[0] == rows:
                    return
            except sqlite3.Error:
                pass
        db.unlink()
    started = time.monotonic()
    store = open_store(db, batch_size=50_000, synchronous="OFF")
    run = store.start_run("products", arguments={}, profile="fast", settings={})
    for n in range(1, rows + 1):
        store.add_item(ProductItem, product(n))
        if n % 50_000 == 0:
            store.flush()
    store.flush()
    counts = RunCounts(rows, rows, 0, 0, 0)
    store.finish_run(run, reason="finished", counts=counts, exit_status=0, stats={})
    store.close()
    size = db.stat().st_size / 2**20
    print(f"built {db} ({rows:,} rows, {size:,.0f} MB) in {time.monotonic() - started:.0f} s")


def peak_rss_mb(pid: int) -> float:
    """The process's peak RSS so far (``VmHWM``: its own, not what it inherited at exec)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return 0.0
    match = _HWM.search(status)
    return int(match.group(1)) / 1024 if match else 0.0


def measure(argv: list[str], cwd: Path) -> tuple[float, float, float, int, str]:
    """Wall seconds, CPU seconds, peak RSS in MB (sampled every 20 ms), exit status, stderr."""
    env = dict(os.environ, SCRAPY_SETTINGS_MODULE="crawler.settings", PYTHONPATH=str(ROOT))
    started = time.monotonic()
    peak = 0.0
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        while True:
            peak = max(peak, peak_rss_mb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return wall, usage.ru_utime + usage.ru_stime, peak, proc.returncode, stderr


def bench(rows: int, workdir: Path, formats: list[str]) -> list[dict[str, Any]]:
    db = workdir / f"products-{rows}.sqlite"
    build_store(db, rows)
    python = sys.executable
    _, startup_cpu, baseline, *_ = measure([python, "-m", "scrapy", "version"], workdir)
    results = []
    for fmt in formats:
        out = workdir / f"products-{rows}.{FORMATS[fmt]}"
        argv = [python, "-m", "scrapy", "export", "products", "-o", str(out), "--db", str(db)]
        wall, cpu, peak, status, stderr = measure(argv, workdir)
        if status != 0:
            raise SystemExit(f"export {fmt} failed ({status}): {stderr.strip()[-500:]}")
        match = _SECONDS.search(stderr)
        inner = float(match.group(1)) if match else wall
        results.append(
            {
                "format": fmt,
                "rows": rows,
                "wall_s": round(wall, 2),
                "export_s": inner,
                "rows_per_s": round(rows / max(inner, 1e-9)),
                "cpu_s": round(cpu - startup_cpu, 1),
                "rows_per_cpu_s": round(rows / max(cpu - startup_cpu, 1e-9)),
                "peak_rss_mb": round(peak, 1),
                "baseline_rss_mb": round(baseline, 1),
                "output_mb": round(out.stat().st_size / 2**20, 1),
            }
        )
        out.unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="rows (repeatable)")
    parser.add_argument("--format", action="append", choices=list(FORMATS), dest="formats")
    parser.add_argument("--workdir", type=Path, help="where the stores are kept (cached)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.gettempdir()) / "crawler-export-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for rows in args.rows or [100_000, 1_000_000]:
        results += bench(rows, workdir, args.formats or list(FORMATS))
    print(f"\n{'format':8} {'rows':>10} {'export s':>9} {'rows/s':>9} {'rows/CPU-s':>11}"
          f" {'peak RSS MB':>12} {'(scrapy alone)':>15} {'output MB':>10}")  # fmt: skip
    for r in results:
        print(
            f"{r['format']:8} {r['rows']:>10,} {r['export_s']:>9.1f} {r['rows_per_s']:>9,}"
            f" {r['rows_per_cpu_s']:>11,} {r['peak_rss_mb']:>12.1f}"
            f" {r['baseline_rss_mb']:>15.1f} {r['output_mb']:>10.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
