"""Our crawler's memory with 10k / 100k / 1M URLs to crawl, three ways of holding them.

* ``lazy``: the ``pages`` spider as shipped. Scrapy pulls start requests only while the
  downloader has free slots, so the frontier in memory stays at about the concurrency; the
  rest waits in the URL file. Only the set of seen seed URLs grows as the file is read.
* ``eager``: every URL pushed into Scrapy's scheduler before the first download (memory
  queue): the frontier really is in memory.
* ``eager + JOBDIR``: the same, into Scrapy's disk queue (``-s JOBDIR=…``).

Each run stops after ``PAGES`` pages (``CLOSESPIDER_PAGECOUNT``): the peak RSS is reached once
the frontier is seeded; crawling it to the end would only take longer.
"""

from __future__ import annotations

import shutil
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


def measure_frontier(
    site: Site, base: str, mode: Mode, workdir: Path, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    ours = next(c for c in CONTESTANTS if c.key == "ours")
    rows = []
    for size in mode.memory_sizes:
        urls = site.url_file(base, size, f"memory-{size}")
        for way, options in WAYS.items():
            rundir = Path(tempfile.mkdtemp(prefix="memory-", dir=workdir))
            extra = (*options, f"-sCLOSESPIDER_PAGECOUNT={PAGES}")
            if "JOBDIR" in way:
                extra += (f"-sJOBDIR={rundir / 'job'}",)
            run = Run(urls, mode.concurrency, rundir, extra)
            m = measure(ours.command(run), cwd=ours.cwd(run), env=ours.env(), logdir=rundir)
            said = ours_result(rundir, m.result)
            row = {
                "urls": size,
                "way": way,
                "peak_rss": m.peak_rss,
                "wall": m.wall,
                "frontier": said.get("frontier"),
                "seeded_peak_rss_mib": said.get("seeded_peak_rss_mib"),
                "pages": said.get("pages"),
                "returncode": m.returncode,
            }
            rows.append(row)
            log(
                f"memory {size:>9,} {way:15} peak {m.peak_rss / 2**20:7.0f} MiB"
                f"  frontier {row['frontier']}  wall {m.wall:6.1f} s"
            )
            shutil.rmtree(rundir, ignore_errors=True)
        urls.unlink()
    return rows
