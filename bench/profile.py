"""Where our crawler's time goes: ``python -m bench.profile URL_FILE [scrapy options…]``.

Runs ``scrapy crawl bench`` (fast profile, full pipeline) in this process under pyinstrument, a
sampling profiler (``pip install pyinstrument``; not a dependency of the bench), then prints the
share of the run spent in each component's entry points (middlewares, handler, spider, seeds,
pipelines) and the modules with the most own time. Serve the URLs first (nginx, or
``python -m bench.servers ROOT PORT 0``); the findings are in ``bench/README.md``.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ENTRY_POINTS = frozenset(
    {
        "process_request", "process_response", "process_exception", "process_item",
        "process_start", "process_spider_output", "process_spider_output_async", "parse",
        "iter_seeds", "download_request", "start_itemproc_async", "flush",
    }
)  # fmt: skip
TOP = 25


def _where(frame: Any) -> str:
    path = str(frame.file_path or "")
    for marker in ("site-packages/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path.removeprefix("/")


def _walk(frame: Any, inside: bool, entries: Counter[str], own: Counter[str]) -> None:
    if frame.file_path:  # synthetic frames (the root, [self], [await]) have none
        own[_where(frame)] += frame.total_self_time
    key = f"{_where(frame)}:{frame.function}"
    counted = not inside and frame.function in ENTRY_POINTS
    if counted:
        entries[key] += frame.time
    for child in frame.children:
        _walk(child, inside or counted, entries, own)


def report(root: Any) -> None:
    entries: Counter[str] = Counter()
    own: Counter[str] = Counter()
    _walk(root, False, entries, own)
    total = root.time
    print(f"\nSampled {total:.2f} s. Component entry points (outermost call, inclusive):")
    for key, seconds in entries.most_common(TOP * 2):
        print(f"  {100 * seconds / total:5.1f}%  {key}")
    print(f"\nOwn time by module (top {TOP}):")
    for module, seconds in own.most_common(TOP):
        print(f"  {100 * seconds / total:5.1f}%  {module}")


def main() -> None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        sys.exit("bench.profile needs pyinstrument: pip install pyinstrument")
    from scrapy.cmdline import execute

    urls, options = sys.argv[1], sys.argv[2:]
    out = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    sys.argv = [
        "scrapy", "crawl", "bench", "-a", f"urls={urls}", "-s", "SPIDER_MODULES=bench.spider",
        "-s", "CRAWL_PROFILE=fast", "-s", f"SQLITE_PATH={out / 'crawler.sqlite'}",
        "-s", f"CSV_EXPORT_DIR={out / 'csv'}", "-s", "LOG_LEVEL=WARNING", *options,
    ]  # fmt: skip
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    with contextlib.suppress(SystemExit):  # scrapy's execute() ends with sys.exit
        execute()
    profiler.stop()
    session = profiler.last_session
    assert session is not None
    report(session.root_frame())


if __name__ == "__main__":
    main()
