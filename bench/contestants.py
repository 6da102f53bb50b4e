"""The contestants: how to run each one on a URL file, and how to read what it did."""

from __future__ import annotations

import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Run:
    """One contestant run: its command, and where it may write."""

    urls: Path
    concurrency: int
    workdir: Path  # empty, private to this run
    extra: tuple[str, ...] = ()  # more ``-s``/``-a`` options for our crawler


@dataclass(frozen=True)
class Contestant:
    key: str
    label: str
    command: Callable[[Run], list[str]]
    in_project: bool = False  # run from the project root (its settings apply)
    workloads: tuple[str, ...] = ("L", "C")

    def cwd(self, run: Run) -> Path:
        return ROOT if self.in_project else run.workdir

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAPY_")}
        env["PYTHONPATH"] = str(ROOT)
        return env


def _peer(module: str) -> Callable[[Run], list[str]]:
    def command(run: Run) -> list[str]:
        return [sys.executable, "-m", f"bench.peers.{module}", str(run.urls), str(run.concurrency)]

    return command


def _stock(run: Run) -> list[str]:
    spider = ROOT / "bench" / "peers" / "scrapy_stock.py"
    # the consoles only open ports that run code; they cost nothing per page
    quiet = ["-s", "TELNETCONSOLE_ENABLED=0", "-s", "REMOTE_CONTROL_ENABLED=0"]
    return [
        sys.executable,
        "-m",
        "scrapy",
        "runspider",
        str(spider),
        "-a",
        f"urls={run.urls}",
        *quiet,
    ]


def _tuned(run: Run) -> list[str]:
    """The same stock spider with what a Scrapy expert would set first: the ceiling of one
    Scrapy process on this work, with no pipeline and nothing stored."""
    tuned = {
        "CONCURRENT_REQUESTS": run.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": run.concurrency,
        "CONCURRENT_ITEMS": 1,
        "LOG_LEVEL": "INFO",
    }
    return [*_stock(run), *(f"-s{name}={value}" for name, value in tuned.items())]


def ours_command(run: Run) -> list[str]:
    settings = {
        "SPIDER_MODULES": "bench.spider",
        "CRAWL_PROFILE": "fast",
        "CONCURRENT_REQUESTS": run.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": run.concurrency,
        "SQLITE_PATH": run.workdir / "crawler.sqlite",
        "CSV_EXPORT_DIR": run.workdir / "csv",
    }
    options = [f"-s{name}={value}" for name, value in settings.items()]
    return [
        sys.executable, "-m", "scrapy", "crawl", "bench", "-a", f"urls={run.urls}",
        *options, *run.extra,
    ]  # fmt: skip


def _ours_memory(run: Run) -> list[str]:
    """Ours with Scrapy's memory queue instead of the durable frontier: what durability costs."""
    return [*ours_command(run), "-sFRONTIER=memory"]


def _ours_workers(run: Run) -> list[str]:
    """Ours with two worker processes on one frontier (``WORKERS=2``): any spider, both cores."""
    return [*ours_command(run), "-sWORKERS=2"]


def _ours_parallel(run: Run) -> list[str]:
    launcher = [sys.executable, "-m", "bench.peers.ours_parallel"]
    return [*launcher, str(run.urls), str(run.concurrency), str(run.workdir), "2", *run.extra]


CONTESTANTS: tuple[Contestant, ...] = (
    Contestant("pool", "Pool(100) + urlopen", _peer("pool_urlopen")),
    Contestant("threads", "ThreadPoolExecutor(100) + requests", _peer("threads_requests")),
    Contestant("grequests", "grequests (gevent), 100 at a time", _peer("grequests_gevent")),
    Contestant("aiohttp", "asyncio + aiohttp + parsel", _peer("aiohttp_asyncio")),
    Contestant("stock", "stock Scrapy (default settings)", _stock),
    Contestant("tuned", "Scrapy tuned: 100 at a time, no pipeline", _tuned),
    Contestant("ours", "our crawler (fast profile, full pipeline)", ours_command, True),
    Contestant("oursmem", "our crawler, memory queue (not durable)", _ours_memory, True),
    Contestant("ours2", "our crawler, WORKERS=2 on one frontier", _ours_workers, True),
    Contestant("ours2shard", "our crawler, 2 shard processes × 50", _ours_parallel, True),
)
BASELINE = "aiohttp"
# the ratios that count are theirs: always the median of every run
ALWAYS_REPEATED = frozenset({BASELINE, "tuned", "ours", "oursmem", "ours2"})


def ours_result(workdir: Path, said: dict[str, Any]) -> dict[str, Any]:
    """What our crawler did: its result line, with "complete" counted in its store and CSV."""
    result = dict(said)
    store, csv_dir = workdir / "crawler.sqlite", workdir / "csv"
    stored = 0
    if store.exists():
        fields = ("url", "title", "h1", "price", "description")
        complete_sql = " AND ".join(f"{f} IS NOT NULL AND {f} != ''" for f in fields)
        with sqlite3.connect(store) as conn:
            try:
                found = conn.execute(f"SELECT count(*) FROM bench_products WHERE {complete_sql}")
                stored = int(found.fetchone()[0])
            except sqlite3.OperationalError:  # no item table: nothing was stored
                pass
    csv_rows = sum(
        max(0, len(path.read_text(encoding="utf-8").splitlines()) - 1)
        for path in csv_dir.glob("*.csv")
    )
    outputs = [
        count for count, on in ((stored, store.exists()), (csv_rows, csv_dir.exists())) if on
    ]
    # with both outputs off (profiling only), the items that left the pipeline count
    result["complete"] = min(outputs) if outputs else int(said.get("items", 0))
    result.update(stored=stored, csv_rows=csv_rows)
    return result
