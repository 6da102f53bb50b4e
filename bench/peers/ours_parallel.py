"""6b. Our crawler as K processes on one URL file: ``-a shard=k/K``, one ``scrapy crawl`` each.

``python -m bench.peers.ours_parallel URL_FILE CONCURRENCY WORKDIR K [scrapy options…]``. The
processes share one SQLite store (WAL, ``BEGIN IMMEDIATE``, busy timeout: each writes its own
run) and write one CSV file per run; each gets CONCURRENCY / K requests in flight, so the total
limit stays CONCURRENCY. This is how a user puts a second core to work (README, ``pages``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.contestants import Run, ours_command


def main() -> None:
    urls, concurrency, workdir, parts = (
        Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]),
    )  # fmt: skip
    processes = []
    for part in range(parts):
        extra = (*sys.argv[5:], f"-ashard={part}/{parts}")
        command = ours_command(Run(urls, max(1, concurrency // parts), workdir, extra))
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
