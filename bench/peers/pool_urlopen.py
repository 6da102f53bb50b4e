"""1. The naive approach: ``multiprocessing.Pool(100)`` workers, each ``urllib.request.urlopen``."""

from __future__ import annotations

import time
import urllib.request
from multiprocessing import Pool

from bench.peers.extract import arguments, extract, is_complete, read_urls, report


def fetch(url: str) -> tuple[bool, bool]:
    """(fetched, complete) for one URL; a new connection every time, as urlopen does."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
    except OSError:
        return False, False
    return True, is_complete(extract(body))


def main() -> None:
    path, concurrency = arguments()
    urls = read_urls(path)
    started = time.perf_counter()
    with Pool(concurrency) as pool:
        results = pool.map(fetch, urls)
    elapsed = time.perf_counter() - started
    pages = sum(fetched for fetched, _ in results)
    report(pages, sum(done for _, done in results), len(urls) - pages, elapsed)


if __name__ == "__main__":
    main()
