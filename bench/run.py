"""``python -m bench.run [--mode quick|full]``: every contestant on the same pages, side by side.

Starts nginx (or a Python fallback) and a latency server on 127.0.0.1, runs workloads L and C
with every contestant (interleaved, so noise hits all of them alike), the concurrency sweep and
the memory measurement of our crawler, and writes ``bench/results/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import machine, memory, report
from bench.contestants import ALWAYS_REPEATED, CONTESTANTS, Contestant, Run, ours_result
from bench.measure import measure
from bench.modes import MODES, Mode
from bench.servers import LatencyServer, StaticServer
from bench.site import Site, build_site, expected_complete

RESULTS = Path(__file__).resolve().parent / "results"
SITE_PAGES = 20_000


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run_once(
    contestant: Contestant, urls: Path, concurrency: int, workdir: Path, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One measured run; "complete" comes from the contestant's output (ours: its store)."""
    rundir = Path(tempfile.mkdtemp(prefix=f"{contestant.key}-", dir=workdir))
    run = Run(urls, concurrency, rundir, extra)
    m = measure(
        contestant.command(run), cwd=contestant.cwd(run), env=contestant.env(), logdir=rundir
    )
    said = ours_result(rundir, m.result) if contestant.key.startswith("ours") else m.result
    figures = {
        "wall": m.wall,
        "crawl": float(said.get("elapsed") or m.wall),
        "cpu": m.cpu,
        "peak_rss": m.peak_rss,
        "returncode": m.returncode,
        **{k: said.get(k) for k in ("pages", "complete", "errors", "frontier")},
    }
    if m.returncode or not said:
        figures["log"] = m.log
        log(f"{contestant.key} failed (exit {m.returncode}):\n{m.log}")
    shutil.rmtree(rundir, ignore_errors=True)
    return figures


def run_workload(
    name: str, urls: Path, count: int, mode: Mode, contestants: list[Contestant], workdir: Path
) -> dict[str, Any]:
    contestants = [c for c in contestants if name in c.workloads]
    runs: dict[str, list[dict[str, Any]]] = {c.key: [] for c in contestants}
    for round_no in range(mode.runs):
        for contestant in contestants:
            done = runs[contestant.key]
            slow = done and done[0]["wall"] > mode.single_run_above
            if slow and contestant.key not in ALWAYS_REPEATED:
                continue  # a slow peer runs once: keeps `full` under 30 minutes
            figures = run_once(contestant, urls, mode.concurrency, workdir)
            done.append(figures)
            log(
                f"{name} run {round_no + 1}: {contestant.key:10} crawl {figures['crawl']:7.2f} s"
                f"  wall {figures['wall']:7.2f} s  cpu {figures['cpu']:7.2f} s"
                f"  rss {figures['peak_rss'] / 2**20:7.0f} MiB  complete {figures['complete']}"
            )
    return {"urls": count, "expected_complete": expected_complete(count), "runs": runs}


def run_sweep(urls: Path, count: int, mode: Mode, workdir: Path) -> list[dict[str, Any]]:
    ours = next(c for c in CONTESTANTS if c.key == "ours")
    points = []
    for level in mode.sweep:
        figures = run_once(ours, urls, level, workdir)
        figures.update(concurrency=level, ideal=mode.ideal(count, level))
        points.append(figures)
        log(f"sweep {level:4}: crawl {figures['crawl']:6.2f} s (ideal {figures['ideal']:.2f} s)")
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="full")
    parser.add_argument("--only", help="comma-separated contestants (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated parts: L,C,sweep,memory")
    parser.add_argument("--runs", type=int, help="runs per contestant (default: the mode's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    # Ctrl-C and kill stop the bench cleanly (servers and contestant included), also when
    # started in the background, where SIGINT arrives ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    mode, skip = MODES[args.mode], set(filter(None, args.skip.split(",")))
    if args.runs:
        mode = dataclasses.replace(mode, runs=args.runs)
    wanted = set(args.only.split(",")) if args.only else {c.key for c in CONTESTANTS}
    contestants = [c for c in CONTESTANTS if c.key in wanted]
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    started = time.monotonic()
    try:
        site = build_site(workdir, SITE_PAGES)
        results = run_all(mode, contestants, skip, site, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["machine"]["bench_minutes"] = round((time.monotonic() - started) / 60, 1)
    written = report.write(results, args.out, "latest" if mode.name == "full" else mode.name)
    log("wrote " + ", ".join(str(p) for p in written))
    return 0


def run_all(
    mode: Mode, contestants: list[Contestant], skip: set[str], site: Site, workdir: Path
) -> dict[str, Any]:
    results: dict[str, Any] = {"mode": mode.__dict__, "workloads": {}}
    with StaticServer(site.root, workdir) as static, LatencyServer(site.root, mode.latency) as slow:
        log(f"static server: {static.kind} at {static.base}; latency server at {slow.base}")
        results["machine"] = machine.describe(static.kind)
        if "L" not in skip:
            urls = site.url_file(slow.base, mode.latency_urls, "latency")
            workload = run_workload("L", urls, mode.latency_urls, mode, contestants, workdir)
            workload["ideal"] = mode.ideal(mode.latency_urls)
            results["workloads"]["L"] = workload
        if "C" not in skip:
            urls = site.url_file(static.base, mode.cpu_urls, "cpu")
            results["workloads"]["C"] = run_workload(
                "C", urls, mode.cpu_urls, mode, contestants, workdir
            )
        if "sweep" not in skip:
            urls = site.url_file(slow.base, mode.sweep_urls, "sweep")
            results["sweep"] = run_sweep(urls, mode.sweep_urls, mode, workdir)
        if "memory" not in skip:
            results["memory"] = memory.measure_frontier(site, slow.base, mode, workdir, log)
        results["machine"]["static_server_errors"] = static.errors()
    return results


if __name__ == "__main__":
    sys.exit(main())
