"""Try settings on our crawler against the aiohttp baseline: ``python -m bench.ablate``.

``python -m bench.ablate --urls 3000 --runs 3 base ci1 nostats …`` serves the bench site from
nginx, then runs the aiohttp peer and our crawler once per variant, round after round
(interleaved, so the machine's noise hits all alike), and prints medians: crawl time, CPU
seconds and CPU milliseconds per page (the steadier figure on a busy machine), and the speed
ratio to aiohttp measured in the same rounds. The findings are in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.contestants import CONTESTANTS
from bench.run import run_once
from bench.servers import LatencyServer, StaticServer
from bench.site import build_site

_AIOHTTP_HANDLER = "scrapy.core.downloader.handlers._aiohttp.AiohttpDownloadHandler"
_HTTPX_HANDLER = "scrapy.core.downloader.handlers._httpx.HttpxDownloadHandler"
VARIANTS: dict[str, tuple[str, ...]] = {
    "base": (),
    "ci1": ("-sCONCURRENT_ITEMS=1",),
    "ci8": ("-sCONCURRENT_ITEMS=8",),
    "ci100": ("-sCONCURRENT_ITEMS=100",),
    "aiohttp": (f'-sDOWNLOAD_HANDLERS={{"http": "{_AIOHTTP_HANDLER}"}}',),
    "httpx": (f'-sDOWNLOAD_HANDLERS={{"http": "{_HTTPX_HANDLER}"}}',),
    "uvloop": ("-sASYNCIO_EVENT_LOOP=uvloop.Loop",),
    "nostats": ("-sDOWNLOADER_STATS=0",),
    "nolazy": ("-sLAZYSTART_ENABLED=0",),
    "buf1000": ("-sLAZYSTART_BUFFER=1000",),
    "nometa": ("-sMETAREFRESH_ENABLED=0",),
    "nocookies": ("-sCOOKIES_ENABLED=0",),
    "noreferer": ("-sREFERER_ENABLED=0",),
    "nodepth": ("-sDEPTH_STATS_VERBOSE=0", "-sDEPTH_LIMIT=0"),
    "noprogress": ("-sPROGRESS_ENABLED=0",),
    "nocond": ("-sCONDITIONAL_ENABLED=0",),
    "sqlite5000": ("-sSQLITE_BATCH_SIZE=5000", "-sSQLITE_BATCH_SECONDS=10"),
    "sqliteoff": ("-sSQLITE_SYNCHRONOUS=OFF",),
    "nopipes": ("-sITEM_PIPELINES={}", "-sSQLITE_ENABLED=0", "-sCSV_ENABLED=0"),
    "nologstats": ("-sLOGSTATS_INTERVAL=0", "-sMEMUSAGE_ENABLED=0"),
    # the durable frontier (the default) against Scrapy's memory queue, and two worker processes
    "memfrontier": ("-sFRONTIER=memory",),
    "workers2": ("-sWORKERS=2",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds; 0: nginx")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("variants", nargs="*", default=["base"], help="names, joined with +")
    args = parser.parse_args()
    by_key = {c.key: c for c in CONTESTANTS}
    workdir = Path(tempfile.mkdtemp(prefix="bench-ablate-"))
    try:
        site = build_site(workdir, 20_000)
        server = (
            LatencyServer(site.root, args.latency)
            if args.latency
            else StaticServer(site.root, workdir)
        )
        figures: dict[str, list[dict[str, float]]] = {}
        with server:
            urls = site.url_file(server.base, args.urls, "urls")
            for _ in range(args.runs):
                for name in ["aiohttp peer", *args.variants]:
                    key = "aiohttp" if name == "aiohttp peer" else "ours"
                    extra = tuple(o for part in name.split("+") for o in VARIANTS.get(part, ()))
                    run = run_once(by_key[key], urls, args.concurrency, workdir, extra)
                    figures.setdefault(name, []).append(run)
                    line = f"  {name:30} crawl {run['crawl']:7.2f}  cpu {run['cpu']:6.2f}"
                    print(line, flush=True)
        show(figures, args.urls)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def show(figures: dict[str, list[dict[str, float]]], urls: int) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in figures[name])

    base_crawl = med("aiohttp peer", "crawl")
    ours_cpu = med("base", "cpu") if "base" in figures else None
    columns = ("crawl s", "CPU s", "min CPU", "CPU ms/page", "× aiohttp")
    print(f"\n{'variant':30} " + " ".join(f"{c:>8}" for c in columns))
    for name in figures:
        crawl, cpu = med(name, "crawl"), med(name, "cpu")
        least = min(r["cpu"] for r in figures[name])  # the least disturbed run
        vs_base = ""
        if ours_cpu and name != "aiohttp peer":
            vs_base = f"  CPU × base {cpu / ours_cpu:.2f}"
        complete = min(int(r.get("complete") or 0) for r in figures[name])
        print(
            f"{name:30} {crawl:8.2f} {cpu:8.2f} {least:8.2f} {1000 * cpu / urls:8.2f}"
            f" {base_crawl / crawl:8.2f}{vs_base}  complete {complete}"
        )


if __name__ == "__main__":
    main()
