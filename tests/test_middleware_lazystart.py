"""``LazyStartMiddleware``: start() is read only as fast as the downloader takes requests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from crawler.demo.server import DemoSite
from crawler.middlewares.lazystart import POLL_SECONDS, LazyStartMiddleware


class _Engine:
    """What the middleware reads: the scheduler's length, filled by what start() yields."""

    def __init__(self) -> None:
        self.scheduler: list[int] = []

    def needs_backout(self) -> bool:
        return True


def test_reads_start_in_bursts_bounded_by_the_buffer() -> None:
    crawler = get_crawler(settings_dict={"LAZYSTART_BUFFER": 4})
    engine = crawler.engine = _Engine()  # type: ignore[assignment]
    middleware = LazyStartMiddleware.from_crawler(crawler)
    assert (middleware.high, middleware.low) == (4, 2)

    async def start() -> Any:
        for number in range(10):
            yield number

    async def scenario() -> list[int]:
        async def consume() -> None:
            async for value in middleware.process_start(start()):
                engine.scheduler.append(value)  # what the engine does with a start request

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        assert engine.scheduler == [0, 1, 2, 3]  # full buffer: reading paused
        del engine.scheduler[:1]  # one request goes to the downloader: 3 left, above half
        middleware.wake()
        await asyncio.sleep(0.05)
        assert engine.scheduler == [1, 2, 3]  # still paused
        del engine.scheduler[:1]  # down to half: refill to the buffer at once
        middleware.wake()
        await asyncio.sleep(0.05)
        assert engine.scheduler == [2, 3, 4, 5]
        engine.scheduler.clear()  # drained without a signal: the poll notices
        await asyncio.sleep(3 * POLL_SECONDS)
        assert engine.scheduler == [6, 7, 8, 9]
        await asyncio.wait_for(task, 2)
        return engine.scheduler

    assert asyncio.run(scenario()) == [6, 7, 8, 9]


def test_buffer_defaults_to_the_concurrency_and_is_checked() -> None:
    crawler = get_crawler(settings_dict={"CONCURRENT_REQUESTS": 30})
    assert LazyStartMiddleware.from_crawler(crawler).high == 30
    with pytest.raises(ValueError, match="LAZYSTART_BUFFER"):
        LazyStartMiddleware.from_crawler(get_crawler(settings_dict={"LAZYSTART_BUFFER": -1}))


def test_can_be_switched_off() -> None:
    with pytest.raises(NotConfigured):
        LazyStartMiddleware.from_crawler(get_crawler(settings_dict={"LAZYSTART_ENABLED": False}))


@pytest.mark.timeout(90)
def test_a_stopped_crawl_does_not_read_the_rest_of_its_url_file(
    run_crawl: Any, fresh_demo_site: DemoSite, tmp_path: Path
) -> None:
    # /slow answers after 0.3 s: the downloader fills up, which is when Scrapy alone would move
    # every remaining URL of the file into its scheduler.
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{fresh_demo_site.url}slow?n={n}\n" for n in range(2000)))
    result = run_crawl(
        "pages",
        "-a",
        f"urls={urls}",
        "-s",
        "CLOSESPIDER_PAGECOUNT=5",
        "-s",
        "CONCURRENT_REQUESTS=20",
    )
    (row,) = result.rows("SELECT stats FROM runs")
    stats = json.loads(row["stats"])
    assert stats["finish_reason"] == "closespider_pagecount"
    assert stats["seeds/valid"] < 200, stats["seeds/valid"]
