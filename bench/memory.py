"""Our crawler's memory with 10k / 100k / 1M URLs to crawl, and where those URLs wait.

Runs against the latency server, so the downloader is full: that is when Scrapy 2.19's engine,
left alone, pulls ``start()`` without pause and moves the whole URL file into its scheduler.

* ``lazy``: the fast profile's ``LazyStartMiddleware`` reads ``start()`` only as requests leave
  the downloader: the scheduler holds about the concurrency, the rest waits in the URL file.
* ``eager``: every URL pushed into the scheduler's memory queue before the first download (what
  Scrapy does by itself, ``LAZYSTART_ENABLED=0``, within its first seconds).
* ``eager + JOBDIR``: the same into Scrapy's disk queue; pickling costs time, so only up to
  ``Mode.disk_queue_max`` URLs.
* ``seen set``: ``iter_seeds`` alone over the whole file (``python -m bench.memory FILE``): the
  set of seen URLs that a lazy crawl builds up as it reads, which the ``lazy`` runs (stopped
  early) do not reach.

Each crawl stops after ``PAGES`` pages (``CLOSESPIDER_PAGECOUNT``): the peak comes once the
frontier is seeded; crawling it to the end would only take longer.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.contestants import CONTESTANTS, Run, ours_result
from bench.measure import measure

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.modes import Mode
    from bench.site import Site

PAGES = 500
WAYS: dict[str, tuple[str, ...]] = {
    "lazy": (),
    "eager": ("-aseeding=eager",),
    "eager + JOBDIR": ("-aseeding=eager",),  # JOBDIR added per run
}


def _crawl(urls: Path, size: int, way: str, mode: Mode, workdir: Path) -> dict[str, Any]:
    ours = next(c for c in CONTESTANTS if c.key == "ours")
    rundir = Path(tempfile.mkdtemp(prefix="memory-", dir=workdir))
    extra = (*WAYS[way], f"-sCLOSESPIDER_PAGECOUNT={PAGES}")
    if "JOBDIR" in way:
        extra += (f"-sJOBDIR={rundir / 'job'}",)
    run = Run(urls, mode.concurrency, rundir, extra)
    m = measure(ours.command(run), cwd=ours.cwd(run), env=ours.env(), logdir=rundir, timeout=1800)
    said = ours_result(rundir, m.result)
    shutil.rmtree(rundir, ignore_errors=True)
    return {
        "urls": size,
        "way": way,
        "peak_rss": m.peak_rss,
        "wall": m.wall,
        "frontier": said.get("frontier"),
        "pages": said.get("pages"),
        "returncode": m.returncode,
    }


def _seen_set(urls: Path, size: int, workdir: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.memory", str(urls)]
    ours = next(c for c in CONTESTANTS if c.key == "ours")
    m = measure(command, cwd=workdir, env=ours.env(), logdir=workdir, timeout=1800)
    return {
        "urls": size,
        "way": "seen set (seed reader alone)",
        "peak_rss": m.peak_rss,
        "wall": m.wall,
        "frontier": None,
        "pages": 0,
        "returncode": m.returncode,
    }


def measure_frontier(
    site: Site, base: str, mode: Mode, workdir: Path, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    rows = []
    for size in mode.memory_sizes:
        urls = site.url_file(base, size, f"memory-{size}")
        ways = [w for w in WAYS if "JOBDIR" not in w or size <= mode.disk_queue_max]
        for way in ways:
            rows.append(_crawl(urls, size, way, mode, workdir))
        rows.append(_seen_set(urls, size, workdir))
        for row in rows[-len(ways) - 1 :]:
            log(
                f"memory {size:>9,} {row['way']:28} peak {row['peak_rss'] / 2**20:7.0f} MiB"
                f"  frontier {row['frontier']}  wall {row['wall']:6.1f} s"
            )
        urls.unlink()
    return rows


def read_all_seeds(path: str) -> None:
    """What a lazy crawl holds once it has read the whole file: ``iter_seeds``'s seen set."""
    from scrapy.utils.test import get_crawler

    from crawler.spiders.pages import PagesSpider

    crawler = get_crawler(PagesSpider)
    spider = PagesSpider.from_crawler(crawler, urls=path)
    seeds = spider.iter_seeds(None, path)
    count = sum(1 for _ in seeds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'{{"seeds": {count}, "peak_rss_mib": {peak:.1f}}}')


if __name__ == "__main__":
    read_all_seeds(sys.argv[1])
