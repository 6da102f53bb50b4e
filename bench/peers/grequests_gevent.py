"""3. grequests (requests on gevent greenlets), 100 requests at a time."""

from __future__ import annotations

import time

import grequests  # before requests: it monkey-patches the standard library for gevent
import requests
from requests.adapters import HTTPAdapter

from bench.peers.extract import arguments, extract, is_complete, read_urls, report


def main() -> None:
    path, concurrency = arguments()
    urls = read_urls(path)
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=concurrency))
    pages = complete = 0
    started = time.perf_counter()
    pending = (grequests.get(url, session=session, timeout=30) for url in urls)
    for response in grequests.imap(pending, size=concurrency):
        pages += 1
        complete += is_complete(extract(response.content))
    elapsed = time.perf_counter() - started
    report(pages, complete, len(urls) - pages, elapsed)


if __name__ == "__main__":
    main()
