"""The frontier's cost and its scaling: ``python -m bench.scale_bench``.

Our ``bench`` spider on one URL file, in interleaved rounds (each configuration once per round,
so the machine's noise hits all alike), medians reported:

* ``memory``: Scrapy's memory queue (``FRONTIER=memory``), nothing durable: the baseline of
  what the durable frontier costs per page.
* ``sqlite``: the durable frontier in the store (the default), one process.
* ``sqlite ×2``: ``WORKERS=2``, two processes on one frontier.
* ``redis ×N``: ``FRONTIER=redis``: ``scrapy seed`` loads the URL file, then N ``scrapy crawl``
  processes share the job and one SQLite store (one machine); Redis round-trips per page from
  ``INFO commandstats``.

Workloads: ``L`` (the latency server: 200 ms per page, 100 requests at a time in all: the ideal
time is URLs × 0.2 s / 100) and ``C`` (no latency: CPU-bound; nginx when installed). Figures:
wall seconds from start to the last process's exit (start-up included), pages/s, CPU
milliseconds per page (user + system of every process), and ratios to one process of the same
frontier. Also: Redis memory per million queued requests, from seeding 100,000.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.contestants import ROOT
from bench.measure import measure
from bench.servers import LatencyServer, StaticServer, free_port
from bench.site import build_site

CONCURRENCY = 100


def crawl_command(urls: Path, workdir: Path, *extra: str) -> list[str]:
    settings = {
        "SPIDER_MODULES": "bench.spider",
        "CRAWL_PROFILE": "fast",
        "CONCURRENT_REQUESTS": CONCURRENCY,
        "CONCURRENT_REQUESTS_PER_DOMAIN": CONCURRENCY,
        "SQLITE_PATH": workdir / "crawler.sqlite",
        "CSV_EXPORT_DIR": workdir / "csv",
        "LOG_LEVEL": "WARNING",
    }
    options = [f"-s{name}={value}" for name, value in settings.items()]
    return [sys.executable, "-m", "scrapy", "crawl", "bench", f"-aurls={urls}", *options, *extra]


class Redis:
    """A throw-away redis-server on a free port."""

    def __enter__(self) -> Redis:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            if self.cli("PING") == "PONG":
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    def calls(self, only: str = "") -> int:
        """Commands Redis has run (each redis.call inside a Lua script counted too), or only
        those named ``only`` (``evalsha``: the script round-trips)."""
        total = 0
        for line in self.cli("INFO", "commandstats").splitlines():
            if line.startswith(f"cmdstat_{only}") and "calls=" in line:
                total += int(line.split("calls=")[1].split(",")[0])
        return total

    def used_memory(self) -> int:
        for line in self.cli("INFO", "memory").splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1])
        return 0

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _launcher(commands: list[list[str]]) -> list[str]:
    """One process that starts ``commands`` at once and waits for all (measured as a tree)."""
    code = (
        "import json, subprocess, sys\n"
        "procs = [subprocess.Popen(c) for c in json.loads(sys.argv[1])]\n"
        "sys.exit(max(p.wait() for p in procs))\n"
    )
    return [sys.executable, "-c", code, json.dumps(commands, default=str)]


def run(name: str, urls: Path, count: int, workdir: Path, redis: Redis | None) -> dict[str, Any]:
    rundir = Path(tempfile.mkdtemp(prefix="scale-", dir=workdir))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    calls_before = scripts_before = 0
    if name == "memory":
        command = crawl_command(urls, rundir, "-sFRONTIER=memory")
    elif name == "sqlite":
        command = crawl_command(urls, rundir)
    elif name == "sqlite x2":
        command = crawl_command(urls, rundir, "-sWORKERS=2")
    else:
        assert redis is not None
        workers = int(name.split("x")[1])
        redis.cli("FLUSHALL")
        shared = [f"-sREDIS_URL={redis.url}"]
        seed = [sys.executable, "-m", "scrapy", "seed", "bench", str(urls), f"-aurls={urls}",
                "-sSPIDER_MODULES=bench.spider", *shared]  # fmt: skip
        subprocess.run(seed, cwd=ROOT, env=env, check=True, capture_output=True)
        calls_before, scripts_before = redis.calls(), redis.calls("evalsha")
        each = crawl_command(urls, rundir, "-sFRONTIER=redis", *shared,
                             f"-sCONCURRENT_REQUESTS_PER_DOMAIN={CONCURRENCY // workers}",
                             f"-sCONCURRENT_REQUESTS={CONCURRENCY // workers}")  # fmt: skip
        command = _launcher([each] * workers)
    m = measure(command, cwd=ROOT, env=env, logdir=rundir, timeout=900)
    figures: dict[str, Any] = {"wall": m.wall, "cpu": m.cpu, "returncode": m.returncode}
    if redis is not None and name.startswith("redis"):
        figures["redis_calls_per_page"] = (redis.calls() - calls_before) / count
        figures["redis_scripts_per_page"] = (redis.calls("evalsha") - scripts_before) / count
    if m.returncode:
        print(f"{name} failed (exit {m.returncode}):\n{m.log}", file=sys.stderr)
    shutil.rmtree(rundir, ignore_errors=True)
    return figures


def redis_memory_per_million(workdir: Path, site_urls: Path, redis: Redis) -> float:
    redis.cli("FLUSHALL")
    before = redis.used_memory()
    seed = [sys.executable, "-m", "scrapy", "seed", "bench", str(site_urls), f"-aurls={site_urls}",
            "-sSPIDER_MODULES=bench.spider", f"-sREDIS_URL={redis.url}"]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    subprocess.run(seed, cwd=ROOT, env=env, check=True, capture_output=True)
    lines = sum(1 for _ in site_urls.open())
    return (redis.used_memory() - before) / lines * 1_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workload", choices=("L", "C"), default="L")
    parser.add_argument(
        "--only", default="memory,sqlite,sqlite x2,redis x1,redis x2,redis x4",
        help="comma-separated configurations",
    )  # fmt: skip
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    try:
        site = build_site(workdir, min(args.urls, 20_000))
        server = (
            LatencyServer(site.root, 0.2)
            if args.workload == "L"
            else StaticServer(site.root, workdir)
        )
        with server, Redis() as redis:
            urls = site.url_file(server.base, args.urls, "urls")
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
            for round_ in range(args.rounds):
                for name in names:
                    results[name].append(run(name, urls, args.urls, workdir, redis))
                    print(f"round {round_ + 1} {name}: {results[name][-1]}", file=sys.stderr)
            memory = None
            if any(name.startswith("redis") for name in names):
                big = site.url_file(server.base, 100_000, "memory")
                memory = redis_memory_per_million(workdir, big, redis)
        report(args, names, results, memory)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(
    args: argparse.Namespace,
    names: list[str],
    results: dict[str, list[dict[str, Any]]],
    memory: float | None,
) -> None:
    ideal = args.urls * 0.2 / CONCURRENCY if args.workload == "L" else None
    print(f"workload {args.workload}: {args.urls:,} URLs, {args.rounds} rounds, medians")
    print(
        "| frontier | wall s | pages/s | CPU ms/page | × 1 process"
        " | Redis commands/page (scripts) |"
    )
    print("|---|---|---|---|---|---|")
    base: dict[str, float] = {}
    for name in names:
        runs = [r for r in results[name] if not r["returncode"]]
        if not runs:
            print(f"| {name} | failed | | | | |")
            continue
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs) / args.urls * 1000
        rate = args.urls / wall
        family = name.split(" ")[0]
        if family not in base or name in ("sqlite", "redis x1"):
            base.setdefault(family, rate)
        ratio = rate / base[family]
        calls = [r["redis_calls_per_page"] for r in runs if "redis_calls_per_page" in r]
        scripts = [r["redis_scripts_per_page"] for r in runs if "redis_scripts_per_page" in r]
        per_page = (
            f"{statistics.median(calls):.1f} ({statistics.median(scripts):.2f})" if calls else ""
        )
        print(f"| {name} | {wall:.1f} | {rate:.0f} | {cpu:.2f} | {ratio:.2f} | {per_page} |")
    if ideal:
        print(f"ideal time (URLs × 0.2 s / {CONCURRENCY}): {ideal:.1f} s")
    if memory:
        print(f"Redis memory per million queued requests: {memory / 1e6:,.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
