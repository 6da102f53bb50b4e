"""6b. Our crawler as K processes: the URL list dealt out in K files, one ``scrapy crawl`` each.

``python -m bench.peers.ours_parallel URL_FILE CONCURRENCY WORKDIR K [scrapy options…]``. The
processes share one SQLite store (WAL, ``BEGIN IMMEDIATE``, busy timeout: each writes its own
run) and write one CSV file per run; each gets CONCURRENCY / K requests in flight, so the total
limit stays CONCURRENCY. This is what a user can do today to use a second core; the crawler
itself has no switch for it yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.contestants import Run, ours_command


def deal(urls: Path, workdir: Path, parts: int) -> list[Path]:
    """Deal the lines of ``urls`` round-robin into ``parts`` files."""
    files = [workdir / f"urls-{n}.txt" for n in range(parts)]
    handles = [file.open("w") for file in files]
    try:
        with urls.open() as lines:
            for number, line in enumerate(lines):
                handles[number % parts].write(line)
    finally:
        for handle in handles:
            handle.close()
    return files


def main() -> None:
    urls, concurrency, workdir, parts = (
        Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]),
    )  # fmt: skip
    extra = (*sys.argv[5:], "-sCSV_FILENAME={spider}-{item}-{run}.csv")
    processes = []
    for file in deal(urls, workdir, parts):
        command = ours_command(Run(file, max(1, concurrency // parts), workdir, extra))
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
    results: list[dict[str, Any]] = []
    for process in processes:
        out, _ = process.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        results.append(json.loads(lines[-1]) if lines else {})
    total = {key: sum(r.get(key) or 0 for r in results) for key in ("pages", "items", "errors")}
    total["elapsed"] = max((r.get("elapsed") or 0.0) for r in results)
    print(json.dumps(total), flush=True)
    sys.exit(max(p.returncode for p in processes))


if __name__ == "__main__":
    main()
