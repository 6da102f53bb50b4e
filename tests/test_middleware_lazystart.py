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
from crawler.middlewares.lazystart import LazyStartMiddleware


class _Engine:
    backout = True

    def needs_backout(self) -> bool:
        return self.backout


def test_holds_start_while_the_engine_backs_out() -> None:
    crawler = get_crawler()
    engine = crawler.engine = _Engine()  # type: ignore[assignment]
    middleware = LazyStartMiddleware.from_crawler(crawler)

    async def start() -> Any:
        for number in range(3):
            yield number

    async def scenario() -> list[int]:
        seen: list[int] = []

        async def consume() -> None:
            async for value in middleware.process_start(start()):
                seen.append(value)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        assert seen == []  # the downloader is full: nothing taken from start()
        engine.backout = False
        middleware.wake()
        await asyncio.wait_for(task, 2)
        return seen

    assert asyncio.run(scenario()) == [0, 1, 2]


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
