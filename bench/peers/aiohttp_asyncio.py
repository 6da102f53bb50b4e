"""4. The hand-written async baseline: asyncio + aiohttp, a semaphore of 100, parsel."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bench.peers.extract import arguments, extract, is_complete, read_urls, report


async def crawl(urls: list[str], concurrency: int) -> list[bool | None]:
    """Per URL: whether all four fields came out, or ``None`` when the fetch failed."""
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(url: str) -> bool | None:
            async with semaphore:
                try:
                    async with session.get(url) as response:
                        body = await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    return None
            return is_complete(extract(body))

        return await asyncio.gather(*(one(url) for url in urls))


def main() -> None:
    path, concurrency = arguments()
    urls = read_urls(path)
    started = time.perf_counter()
    results = asyncio.run(crawl(urls, concurrency))
    elapsed = time.perf_counter() - started
    pages = sum(r is not None for r in results)
    report(pages, sum(r is True for r in results), len(urls) - pages, elapsed)


if __name__ == "__main__":
    main()
