"""Rendering benchmark: pages/s in Chromium, memory over a long crawl, and ``auto`` vs ``always``.

Runs ``scrapy crawl products`` in subprocesses against the demo shop's ``/js/mixed/`` section,
served from this process on 127.0.0.1 (every tenth page there is filled by JavaScript):

1. ``long``: ``render=always`` over ``--pages`` pages that all need JavaScript; the summed RSS of
   the crawl process and its children (Playwright's driver, every Chromium process) is sampled
   every ``--sample-every`` pages. Flat means the last samples are no higher than the middle ones.
2. ``mixed``: the same ``--mixed`` pages (10% need JavaScript) with ``never``, ``auto`` and
   ``always``: wall time, and how many items have every field.
0. ``limit-N`` (``--sweep 4,8,16``): ``always`` over ``--sweep-pages`` JS pages per page limit.
3. ``stock`` (``--stock N``): N JavaScript pages with scrapy-playwright's own handler and
   defaults (one context, 16 pages, no resource blocking, HTML taken at ``load``).

Usage: ``.venv/bin/python -m bench.render_bench [--pages 2000] [--mixed 1000] [--stock 300]``.
Figures from one run are only comparable with each other (2 cores shared with the server).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from crawler.demo.server import DemoSite

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("sku", "name", "price", "currency", "in_stock", "rating", "category", "description")
STOCK_HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"


@dataclass
class Run:
    name: str
    pages: int  # product pages fetched (server hits on /js/mixed/<n>, first fetch only)
    seconds: float  # wall time of the crawl process, start-up included
    crawl_seconds: float  # from the first to the last product page
    items: int = 0
    complete_items: int = 0  # items with every field
    rendered: int = 0  # items whose page went through the browser
    memory_mib: list[tuple[int, float, float]] = field(default_factory=list)  # pages, RSS, PSS
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.crawl_seconds if self.crawl_seconds else 0.0


def tree_memory(process: psutil.Process) -> tuple[float, float]:
    """Summed RSS and PSS (MiB) of a process and all its descendants.

    RSS counts memory shared by Chromium's processes once per process (what `ps` users add up);
    PSS splits it between them, so its sum is what the crawl really holds.
    """
    rss = pss = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss, pss = rss + info.rss, pss + getattr(info, "pss", info.rss)
    return round(rss / 2**20, 1), round(pss / 2**20, 1)


def product_hits(site: DemoSite) -> dict[str, int]:
    return {p: n for p, n in list(site.hits.items()) if p.startswith("/js/mixed/") and p[10:]}


def crawl(
    site: DemoSite, name: str, start: str, render: str, sample_every: int, *settings: str
) -> Run:
    """One `scrapy crawl products` run; RSS sampled each time `sample_every` more pages are in."""
    workdir = Path(tempfile.mkdtemp(prefix=f"render-bench-{name}-"))
    db = workdir / "crawler.sqlite"
    command = [
        sys.executable, "-m", "scrapy", "crawl", "products", "-a", f"start_url={site.url}{start}",
        "-a", f"render={render}", "-s", f"SQLITE_PATH={db}", "-s", "CSV_ENABLED=False",
        "-s", "CRAWL_PROFILE=fast", "-s", "LOG_LEVEL=WARNING", "-s", "PROGRESS_ENABLED=False",
        "-s", "CONDITIONAL_ENABLED=False", "-s", "HEALTH_ENABLED=False", *settings,
    ]  # fmt: skip
    site.hits.clear()
    env = dict(os.environ, PYTHONPATH=str(ROOT), SCRAPY_SETTINGS_MODULE="crawler.settings")
    log = workdir / "stderr.log"
    began = time.monotonic()
    first = last = 0.0
    samples: list[tuple[int, float, float]] = []
    seen = 0
    with (
        log.open("w") as stderr,
        subprocess.Popen(command, cwd=workdir, env=env, stderr=stderr) as proc,
    ):
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            time.sleep(0.05)
            pages = len(product_hits(site))
            now = time.monotonic()
            if pages > seen:
                first, last, seen = first or now, now, pages
            if sample_every and pages >= (len(samples) + 1) * sample_every:
                samples.append((pages, *tree_memory(root)))
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{name}: crawl failed ({proc.returncode}), {log}:\n{tail}")
    run = Run(
        name, len(product_hits(site)), time.monotonic() - began, last - first, memory_mib=samples
    )
    read_results(run, db)
    return run


def read_results(run: Run, db: Path) -> None:
    with sqlite3.connect(db) as conn:
        complete = " AND ".join(f"{f} IS NOT NULL" for f in FIELDS)
        run.items, run.complete_items, run.rendered = conn.execute(
            f"SELECT count(*), sum({complete}), sum(fetched_with = 'browser') FROM products"
        ).fetchone()
        (stats,) = conn.execute("SELECT stats FROM runs").fetchone()
    keep = ("render/", "playwright/page_count", "playwright/context_count", "memusage/max")
    run.stats = {k: v for k, v in json.loads(stats).items() if k.startswith(keep)}


def flat(values: list[float]) -> bool:
    """The second half of the samples never exceeds the first half's peak by more than 10%."""
    half = len(values) // 2
    return len(values) >= 4 and max(values[half:]) <= 1.1 * max(values[:half])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000, help="JS pages of the long run")
    parser.add_argument("--mixed", type=int, default=1000, help="pages of the mixed runs")
    parser.add_argument("--stock", type=int, default=300, help="JS pages, stock settings (0: skip)")
    parser.add_argument("--sample-every", type=int, default=200, help="pages between RSS samples")
    parser.add_argument(
        "--sweep", default="", help="page limits to compare first, e.g. 4,8,16 (on --sweep-pages)"
    )
    parser.add_argument("--sweep-pages", type=int, default=300, help="JS pages per sweep run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    runs: list[Run] = []
    with DemoSite() as site:
        for limit in filter(None, args.sweep.split(",")):
            start = f"js/mixed/?count={args.sweep_pages}&step=10"
            pages = f"PLAYWRIGHT_MAX_PAGES_PER_CONTEXT={int(limit)}"
            runs.append(crawl(site, f"limit-{limit}", start, "always", 0, "-s", pages))
        js_only = f"js/mixed/?count={args.pages}&step=10"
        runs.append(crawl(site, "long", js_only, "always", args.sample_every))
        mixed = f"js/mixed/?count={args.mixed}"
        for mode in ("never", "auto", "always"):
            runs.append(crawl(site, f"mixed-{mode}", mixed, mode, 0))
        if args.stock:
            handlers = json.dumps(dict.fromkeys(("http", "https"), STOCK_HANDLER))
            stock = (
                "-s", f"DOWNLOAD_HANDLERS={handlers}",
                "-s", "CONCURRENT_REQUESTS=16", "-s", "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT=16",
                "-s", "PLAYWRIGHT_MAX_CONTEXTS=0",
            )  # fmt: skip
            start = f"js/mixed/?count={args.stock}&step=10"
            runs.append(crawl(site, "stock", start, "always", 50, *stock))
    report(runs)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=2), encoding="utf-8")
    return 0


def report(runs: list[Run]) -> None:
    print(f"{'run':<14}{'pages':>7}{'wall s':>9}{'pages/s':>9}{'items':>7}{'complete':>9}"
          f"{'browser':>9}{'peak RSS MiB':>14}")  # fmt: skip
    for r in runs:
        peak = max((rss for _, rss, _ in r.memory_mib), default=0.0)
        print(f"{r.name:<14}{r.pages:>7}{r.seconds:>9.1f}{r.pages_per_second:>9.1f}{r.items:>7}"
              f"{r.complete_items:>9}{r.rendered:>9}{peak:>14.0f}")  # fmt: skip
    by_name = {r.name: r for r in runs}
    long = by_name["long"]
    print(f"\nlong run memory (pages, RSS MiB, PSS MiB): {long.memory_mib}")
    rss, pss = [m[1] for m in long.memory_mib], [m[2] for m in long.memory_mib]
    print(f"flat: RSS {flat(rss)}, PSS {flat(pss)}")
    auto, always = by_name["mixed-auto"], by_name["mixed-always"]
    print(f"mixed: auto is {always.seconds / auto.seconds:.1f}x faster than always (wall time), "
          f"{always.crawl_seconds / auto.crawl_seconds:.1f}x on the crawl itself")  # fmt: skip
    for r in runs:
        print(f"{r.name}: {json.dumps(r.stats, sort_keys=True)}")


if __name__ == "__main__":
    sys.exit(main())
