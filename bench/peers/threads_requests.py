"""2. ``ThreadPoolExecutor(100)`` sharing one ``requests.Session`` (a pool of 100 connections)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter

from bench.peers.extract import arguments, extract, is_complete, read_urls, report


def main() -> None:
    path, concurrency = arguments()
    urls = read_urls(path)
    session = requests.Session()
    # requests keeps only 10 connections per host by default: 100 threads would churn them
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=concurrency))

    def fetch(url: str) -> tuple[bool, bool]:
        try:
            body = session.get(url, timeout=30).content
        except requests.RequestException:
            return False, False
        return True, is_complete(extract(body))

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(fetch, urls))
    elapsed = time.perf_counter() - started
    pages = sum(fetched for fetched, _ in results)
    report(pages, sum(done for _, done in results), len(urls) - pages, elapsed)


if __name__ == "__main__":
    main()
