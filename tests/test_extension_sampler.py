"""RunSampler: a ``run_samples`` row every ``SAMPLE_INTERVAL`` and at close, and the response
figures (latency histogram, per-host pages/errors/bytes, http/browser) in the run's stats.

Real crawls of the demo shop (slowed down with ``page_delay`` so that a crawl spans several
samples) and of the fault server, in this process.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request, Spider, signals
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler
from twisted.internet import task
from twisted.internet.error import DNSLookupError
from twisted.python.failure import Failure

from crawler import stats as keys
from crawler.demo.server import DemoSite
from crawler.extensions.runrecorder import RunRecorder
from crawler.extensions.sampler import LATENCY_BUCKETS, OTHER_HOSTS, RunSampler, SamplerConfig
from crawler.meta import OWN_REQUEST
from crawler.signals import fetch_failed
from tests.faultserver import FaultServer
from tests.support import CrawlResult, run_crawl_in

pytestmark = pytest.mark.timeout(150)

INTERVAL = "0.2"
CUMULATIVE = ("pages", "items", "errors", "rejects", "bytes", "rendered")


@pytest.fixture(scope="module")
def slow_shop() -> Iterator[DemoSite]:
    """Every answer waits 0.1 s: a crawl of a few dozen pages spans several samples."""
    with DemoSite(slow_seconds=0.3, page_delay=0.1) as site:
        yield site


def crawl_shop(crawl: Any, site: DemoSite, *settings: str) -> CrawlResult:
    options = [arg for setting in settings for arg in ("-s", setting)]
    result: CrawlResult = crawl(
        "products", "-a", f"start_url={site.url}", "-a", "max_products=20",
        "-s", f"SAMPLE_INTERVAL={INTERVAL}", "-s", "CONCURRENT_REQUESTS=2", *options,
    )  # fmt: skip
    return result


@pytest.fixture(scope="module")
def shop(slow_shop: DemoSite, tmp_path_factory: Any, crawl_in: Any) -> CrawlResult:
    workdir = tmp_path_factory.mktemp("sampled")
    return crawl_shop(lambda *a: crawl_in(workdir, *a), slow_shop)


def samples(result: CrawlResult) -> list[dict[str, Any]]:
    return [dict(r) for r in result.rows("SELECT * FROM run_samples ORDER BY rowid")]


def run_of(result: CrawlResult) -> dict[str, Any]:
    (run,) = [dict(r) for r in result.rows("SELECT * FROM runs")]
    run["stats"] = json.loads(run["stats"])
    return run


def test_samples_follow_the_crawl(shop: CrawlResult) -> None:
    assert shop.returncode == 0, shop.stderr[-3000:]
    rows = samples(shop)
    run = run_of(shop)
    assert len(rows) >= 4, rows  # the crawl lasts over a second: a row every 0.2 s, one at close
    assert {(r["run_id"], r["worker"]) for r in rows} == {(run["id"], 0)}
    for before, after in itertools.pairwise(rows):
        assert after["elapsed"] > before["elapsed"]
        for column in CUMULATIVE:
            assert after[column] >= before[column], (column, before, after)
    last = rows[-1]
    assert (last["pages"], last["items"]) == (run["pages"], run["items"])
    assert (last["errors"], last["rejects"], last["rendered"]) == (0, 0, 0)
    assert last["at"] >= rows[0]["at"] and last["elapsed"] >= 1.0
    # the crawl was under way while sampled: requests in flight, pages growing
    assert any(r["in_flight"] > 0 for r in rows[:-1])
    assert rows[0]["pages"] < last["pages"]
    assert (last["in_flight"], last["queued"]) == (0, 0)  # nothing left at close
    hosts = run["stats"][keys.HOSTS]
    assert last["bytes"] == sum(h["bytes"] for h in hosts.values()) > 0


def test_each_worker_samples_itself(slow_shop: DemoSite, tmp_path: Path) -> None:
    """WORKERS=2: each child writes its own rows, as its WORKER_INDEX, in the one run."""
    result = run_crawl_in(
        tmp_path, "site", "-a", f"start_url={slow_shop.url}", "-a", "depth=2",
        "-s", "WORKERS=2", "-s", "FRONTIER_LEASE_BATCH=2", "-s", f"SAMPLE_INTERVAL={INTERVAL}",
        subprocess=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = run_of(result)
    rows = samples(result)
    assert {r["run_id"] for r in rows} == {run["id"]}
    for worker in result.rows("SELECT * FROM run_workers"):
        own = [r for r in rows if r["worker"] == worker["worker"]]
        assert len(own) >= 2, rows  # at least one on the clock, and the last at close
        assert own[-1]["pages"] == worker["pages"] > 0
        assert own[-1]["items"] == worker["items"]
    assert {r["worker"] for r in rows} == {0, 1}


def test_response_figures_in_the_stats(shop: CrawlResult, slow_shop: DemoSite) -> None:
    stats = run_of(shop)["stats"]
    responses = stats[keys.RESPONSES]  # the spider's responses, robots.txt not included
    latency = stats[keys.LATENCY_MS]
    assert list(latency) == [str(b) for b in LATENCY_BUCKETS]
    assert sum(latency.values()) == responses
    # every answer waits at least 0.1 s: none in the buckets up to 100 ms
    assert latency["50"] == latency["100"] == 0
    assert stats[keys.FETCH_KINDS] == {"http": responses, "browser": 0}
    assert stats[keys.HOSTS] == {
        slow_shop.host: {"pages": responses, "errors": 0, "bytes": samples(shop)[-1]["bytes"]}
    }


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def test_errors_per_host(faults: FaultServer, run_crawl: Any) -> None:
    """HTTP errors and requests that failed without a response count against their host."""
    urls = [
        faults.url("/page?n=1"),
        faults.url("/page?n=2"),
        faults.url("/flaky?fail=99&key=sampler"),  # 503 every time, retries included
        faults.url("/reset"),  # connection reset: no response at all
        "http://shop.invalid/",  # a name that cannot resolve: another host, no response
    ]
    result: CrawlResult = run_crawl(
        "pages", "-a", f"url={','.join(urls)}", "-s", f"SAMPLE_INTERVAL={INTERVAL}"
    )
    run = run_of(result)
    stats = run["stats"]
    hosts = stats[keys.HOSTS]
    assert hosts["127.0.0.1"]["pages"] == 3 and hosts["127.0.0.1"]["errors"] == 2, hosts
    assert hosts["shop.invalid"] == {"pages": 0, "errors": 1, "bytes": 0}, hosts
    assert sum(h["errors"] for h in hosts.values()) == stats[keys.FETCH_ERRORS] == 3
    assert samples(result)[-1]["errors"] == run["errors"] >= 3
    assert sum(stats[keys.LATENCY_MS].values()) == 3  # the responses; failures have no latency


def test_hosts_past_the_cap_are_summed(faults: FaultServer, run_crawl: Any) -> None:
    """Three hosts, one kept by name (the first seen): the other two summed."""
    urls = [
        faults.url("/page?n=3"),
        faults.url("/page?n=4", host="localhost"),
        "http://shop.invalid/",
    ]
    result: CrawlResult = run_crawl(
        "pages", "-a", f"url={','.join(urls)}", "-s", "SAMPLE_MAX_HOSTS=1"
    )
    hosts = run_of(result)["stats"][keys.HOSTS]
    assert len(hosts) == 2 and OTHER_HOSTS in hosts, hosts
    assert sum(h["pages"] for h in hosts.values()) == 2
    assert sum(h["errors"] for h in hosts.values()) == 1
    assert sum(h["pages"] + h["errors"] for h in hosts.values() if h is not hosts[OTHER_HOSTS]) == 1


def test_sampling_off_writes_nothing(slow_shop: DemoSite, run_crawl: Any) -> None:
    result: CrawlResult = run_crawl(
        "pages", "-a", f"url={slow_shop.url}", "-s", "SAMPLE_ENABLED=False"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_of(result)["pages"] >= 1
    assert samples(result) == []
    stats = run_of(result)["stats"]
    assert not {keys.LATENCY_MS, keys.HOSTS, keys.FETCH_KINDS} & set(stats)


def test_no_run_record_no_sampler() -> None:
    with pytest.raises(NotConfigured):
        RunSampler.from_crawler(get_crawler(settings_dict={"SQLITE_ENABLED": True}))
    with pytest.raises(NotConfigured):
        RunSampler.from_crawler(
            get_crawler(settings_dict={"RUN_RECORD": True, "SQLITE_ENABLED": False})
        )


class ShopSpider(Spider):
    name = "shop"


def send(crawler: Any, signal: object, **kwargs: Any) -> None:
    for _, result in crawler.signals.send_catch_log(signal, spider=crawler.spider, **kwargs):
        assert not isinstance(result, Failure), result


def response(url: str, latency: float | None, status: int = 200, **meta: Any) -> HtmlResponse:
    request = Request(url, meta=meta if latency is None else {"download_latency": latency, **meta})
    return HtmlResponse(url, status=status, body=b"x" * 100, request=request)


def test_the_sampler_by_itself(tmp_path: Path) -> None:
    """Worker index, latency buckets (upper bounds inclusive), own requests left out, errors
    without a response, samples on the clock and at close: without a reactor."""
    crawler = get_crawler(
        ShopSpider,
        {
            "SQLITE_ENABLED": True,
            "RUN_RECORD": True,
            "SQLITE_PATH": str(tmp_path / "crawler.sqlite"),
            "WORKER_INDEX": 3,
            "SAMPLE_INTERVAL": 5,
        },
    )
    crawler.spider = ShopSpider.from_crawler(crawler)
    recorder = RunRecorder.from_crawler(crawler)  # kept: signals hold them weakly
    sampler = RunSampler.from_crawler(crawler)
    sampler.clock = clock = task.Clock()
    send(crawler, signals.spider_opened)
    for latency in (0.01, 0.05, 0.0501, 0.3, 11.0, None):
        page = response("http://a.example/p", latency)
        send(crawler, signals.response_received, response=page, request=page.request)
    robots = response("http://a.example/robots.txt", 0.01, **{OWN_REQUEST: True})
    send(crawler, signals.response_received, response=robots, request=robots.request)
    gone = response("http://b.example/", 0.2, status=404)
    send(crawler, signals.response_received, response=gone, request=gone.request)
    for exc in (DNSLookupError("b.example"), IgnoreRequest("robots.txt")):
        failed = Request("http://b.example/x")
        send(crawler, fetch_failed, request=failed, failure=Failure(exc))
    clock.advance(5)
    send(crawler, signals.spider_closed, reason="finished")
    assert not recorder.store.is_open  # the last holder closed it

    stats = crawler.stats.get_stats()
    latency = stats[keys.LATENCY_MS]
    assert latency == {
        "50": 2, "100": 1, "200": 1, "500": 1, "1000": 0, "2000": 0, "5000": 0, "10000": 0,
        "inf": 1,
    }  # fmt: skip
    assert stats[keys.HOSTS] == {
        "a.example": {"pages": 6, "errors": 0, "bytes": 600},
        "b.example": {"pages": 1, "errors": 2, "bytes": 100},
    }
    assert stats[keys.FETCH_KINDS] == {"http": 7, "browser": 0}
    with sqlite3.connect(tmp_path / "crawler.sqlite") as conn:
        rows = conn.execute("SELECT worker, bytes, rendered FROM run_samples").fetchall()
    assert rows == [(3, 700, 0), (3, 700, 0)]  # one on the clock, one at close


def test_bad_interval_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        config = SamplerConfig.from_settings(get_crawler(settings_dict={}).settings)
        assert config.interval == 5.0 and config.max_hosts == 50
        for bad in ("0", "-1", "soon"):
            crawler = get_crawler(settings_dict={"SAMPLE_INTERVAL": bad})
            assert SamplerConfig.from_settings(crawler.settings).interval == 5.0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and all("SAMPLE_INTERVAL" in line for line in lines), lines


@contextlib.contextmanager
def when_sampled(db: Path, action: Any) -> Iterator[list[bool]]:
    """Run ``action(conn)`` on ``db`` once it holds a run_samples row (polled from a thread)."""
    done: list[bool] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(sqlite3.Error):
                conn = sqlite3.connect(db, timeout=10)
                try:
                    if conn.execute("SELECT count(*) FROM run_samples").fetchone()[0]:
                        action(conn)
                        done.append(True)
                        return
                finally:
                    conn.close()
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield done
    finally:
        stop.set()
        watcher.join(10)


def test_sample_store_errors_do_not_fail_the_crawl(
    slow_shop: DemoSite, run_crawl: Any, tmp_path: Path
) -> None:
    """run_samples refuses every write from the first row on: the crawl finishes all the same,
    and says so in one WARNING line."""

    def refuse(conn: sqlite3.Connection) -> None:
        with conn:
            conn.execute(
                "CREATE TRIGGER no_samples BEFORE INSERT ON run_samples"
                " BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )

    with when_sampled(tmp_path / "crawler.sqlite", refuse) as refused:
        result = crawl_shop(run_crawl, slow_shop)
    assert refused, result.stderr[-3000:]
    assert result.returncode == 0, result.stderr[-3000:]
    run = run_of(result)
    assert (run["finish_reason"], run["exit_status"]) == ("finished", 0)
    assert run["items"] == 20
    warnings = [line for line in result.stderr.splitlines() if "run_samples" in line]
    assert len(warnings) == 1 and " WARNING: " in warnings[0], warnings
    assert "disk I/O error" in warnings[0]
    assert "Traceback" not in result.stderr
    assert len(samples(result)) == 1  # the row written before the trigger, none after


@pytest.mark.timeout(150)
@pytest.mark.xdist_group("browser")
def test_rendered_crawl_counts_browser_responses(demo_site: DemoSite, run_crawl: Any) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")
    result: CrawlResult = run_crawl(
        "products", "-a", f"start_url={demo_site.url}js/", "-a", "render=always",
        "-s", f"SAMPLE_INTERVAL={INTERVAL}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    stats = run_of(result)["stats"]
    assert stats[keys.FETCH_KINDS] == {"http": 0, "browser": 15}  # index, 2 listings, 12 products
    assert samples(result)[-1]["rendered"] == 15
    assert sum(stats[keys.LATENCY_MS].values()) == 15
