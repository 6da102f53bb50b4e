"""Our crawler's memory with 10k / 100k / 1M URLs to crawl, and where those URLs wait.

Runs against the latency server, so the downloader is full: that is when Scrapy 2.19's engine,
left alone, pulls ``start()`` without pause and moves the whole URL file into its scheduler.

* ``lazy``: the fast profile's ``LazyStartMiddleware`` reads ``start()`` only as requests leave
  the downloader: the scheduler holds about the concurrency, the rest waits in the URL file.
* ``eager``: every URL pushed into the scheduler's memory queue before the first download (what
  Scrapy does by itself, ``LAZYSTART_ENABLED=0``, within its first seconds).
* ``eager + JOBDIR``: the same into Scrapy's disk queue.
  Seeding costs about 0.15 ms per URL (validation, ``Request``) and JOBDIR as much again for
  pickling, so these run up to ``Mode.eager_max`` / ``Mode.disk_queue_max`` URLs.
* ``seen set``: what a lazy crawl still accumulates as it reads the file: ``iter_seeds`` keeps
  every seed URL in a set to drop repeats. ``python -m bench.memory FILE`` builds that set
  from the whole file and reports how much RSS it added; the ``lazy`` runs, stopped early,
  never reach it, so the estimate for a whole lazy crawl is their peak plus this.

Each crawl stops after ``PAGES`` pages (``CLOSESPIDER_PAGECOUNT``): the peak comes once the
frontier is seeded; crawling it to the end would only take longer.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

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


def _seen_set(urls: Path, size: int, workdir: Path, lazy_peak: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.memory", str(urls)]
    ours = next(c for c in CONTESTANTS if c.key == "ours")
    m = measure(command, cwd=workdir, env=ours.env(), logdir=workdir, timeout=1800)
    added = int(m.result.get("added_bytes", 0))
    return {
        "urls": size,
        "way": "lazy, whole file read (lazy peak + seen set)",
        "peak_rss": lazy_peak + added,
        "seen_set_bytes": added,
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
        limits = {"lazy": size, "eager": mode.eager_max, "eager + JOBDIR": mode.disk_queue_max}
        ways = [way for way in WAYS if size <= limits[way]]
        for way in ways:
            rows.append(_crawl(urls, size, way, mode, workdir))
        rows.append(_seen_set(urls, size, workdir, rows[-len(ways)]["peak_rss"]))
        for row in rows[-len(ways) - 1 :]:
            log(
                f"memory {size:>9,} {row['way']:28} peak {row['peak_rss'] / 2**20:7.0f} MiB"
                f"  frontier {row['frontier']}  wall {row['wall']:6.1f} s"
            )
        urls.unlink()
    return rows


def seen_set_bytes(path: str) -> None:
    """RSS added by a set of every URL of the file, as ``BaseSpider.iter_seeds`` keeps it.

    The bench's URLs are already in normal form, so the set holds the same strings that
    ``validate_url`` would return (validating a million of them would take minutes).
    """
    process = psutil.Process()
    before = process.memory_info().rss
    with Path(path).open(encoding="utf-8") as lines:
        seen = {line.strip() for line in lines}
    added = process.memory_info().rss - before
    print(json.dumps({"seeds": len(seen), "added_bytes": added}))


if __name__ == "__main__":
    seen_set_bytes(sys.argv[1])
