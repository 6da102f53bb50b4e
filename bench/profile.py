"""Profile our crawler's CPU time: ``python -m bench.profile URL_FILE [scrapy options…]``.

Runs ``scrapy crawl bench`` in this process under cProfile with a CPU-time clock (so other
programs on the machine do not inflate the figures), then prints where the CPU went: own time
summed per module (which component costs what), and the functions with most own time.
Start a server first; ``python -m bench.run`` does not call this.
"""

from __future__ import annotations

import contextlib
import cProfile
import pstats
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from scrapy.cmdline import execute

TOP = 30


def _module(filename: str) -> str:
    """``…/site-packages/scrapy/core/engine.py`` -> ``scrapy/core/engine.py``."""
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3" else tail
    return filename


def report(stats: pstats.Stats, total: float) -> None:
    by_module: Counter[str] = Counter()
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, _, own, _, _) in raw.items():
        by_module[_module(filename)] += own
    print(f"\nCPU seconds: {total:.2f}; own time by module (top {TOP}):")
    for module, seconds in by_module.most_common(TOP):
        print(f"  {seconds:7.2f} s  {100 * seconds / total:5.1f}%  {module}")
    print(f"\nFunctions by own time (top {TOP}):")
    stats.sort_stats("tottime").print_stats(TOP)


def main() -> None:
    urls, options = sys.argv[1], sys.argv[2:]
    out = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    sys.argv = [
        "scrapy", "crawl", "bench", "-a", f"urls={urls}", "-s", "SPIDER_MODULES=bench.spider",
        "-s", "CRAWL_PROFILE=fast", "-s", f"SQLITE_PATH={out / 'crawler.sqlite'}",
        "-s", f"CSV_EXPORT_DIR={out / 'csv'}", "-s", "LOG_LEVEL=WARNING", *options,
    ]  # fmt: skip
    profiler = cProfile.Profile(time.process_time)
    started = time.process_time()
    with contextlib.suppress(SystemExit):  # scrapy's execute() ends with sys.exit
        profiler.runcall(execute)
    report(pstats.Stats(profiler), time.process_time() - started)


if __name__ == "__main__":
    main()
