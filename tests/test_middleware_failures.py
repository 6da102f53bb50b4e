"""A plain ``scrapy.Spider`` (no errback, no base class of ours) whose pages fail: its HTTP errors
and failed downloads count in the verdict and are failed-page rows (``FetchFailureMiddleware``).

Before, such a spider fetching only HTTP 500s exited 0 (its errors were counted nowhere), and its
timeouts and refused connections were neither counted nor in ``scrapy export --failed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from crawler import stats as keys
from tests.faultserver import FaultServer
from tests.support import CrawlResult, run_crawl_in

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def plain_spider(urls: list[str]) -> str:
    """The Scrapy tutorial's shape: start_urls, parse yields dicts."""
    return (
        "import scrapy\n\n\n"
        "class FailingSpider(scrapy.Spider):\n"
        '    name = "failing"\n'
        f"    start_urls = {urls!r}\n\n"
        "    def parse(self, response):\n"
        '        yield {"url": response.url, "title": response.css("title::text").get()}\n'
    )


def crawl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, urls: list[str]) -> CrawlResult:
    module = f"failing_spiders_{abs(hash(tmp_path))}"  # a module of its own per test (in-process)
    (tmp_path / f"{module}.py").write_text(plain_spider(urls))
    monkeypatch.syspath_prepend(str(tmp_path))
    return run_crawl_in(
        tmp_path, "failing", "-s", f"SPIDER_MODULES={module}",
        "-s", "SAFETY_ALLOW_PRIVATE_TARGETS=True", "-s", "RETRY_ENABLED=False",
        "-s", "ROBOTSTXT_OBEY=False",
    )  # fmt: skip


def test_a_plain_spider_whose_pages_all_fail_fails(
    faults: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = [faults.url(f"/status?code=500&n={n}") for n in range(12)]
    result = crawl(tmp_path, monkeypatch, urls)
    assert result.returncode == 1, result.stderr[-3000:]
    (run,) = result.rows("SELECT * FROM runs")
    assert run["errors"] == 12
    assert run["failure"].startswith("errors: 12 of 12 requests failed (100%"), run["failure"]


def test_a_plain_spiders_failed_downloads_are_counted_and_recorded(
    faults: FaultServer, refused_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = [faults.url(f"/status?code=200&n={n}") for n in range(10)]
    refused = [f"{refused_url}?n={n}" for n in range(2)]
    result = crawl(tmp_path, monkeypatch, [*good, faults.url("/status?code=404"), *refused])
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = result.rows("SELECT * FROM runs")
    # 3 of 13 failed: under HEALTH_MAX_ERROR_RATIO, a good run that counts them
    assert (run["pages"], run["errors"]) == (11, 3)
    failed = {
        row["url"]: (row["status"], row["error"])
        for row in result.rows("SELECT url, status, error FROM failed_pages")
    }
    assert failed == {
        faults.url("/status?code=404"): (404, "http_404"),
        **{url: (None, "DownloadConnectionRefusedError") for url in refused},
    }
    hosts = result.rows("SELECT stats FROM runs")[0]["stats"]
    assert f'"{keys.DOWNLOAD_FAILURES}": 2' in hosts
