"""CircuitBreakerMiddleware on a real downloader (opening, failing fast, probing, closing), and
in a real crawl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request, Spider
from scrapy.core.downloader import Slot
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadTimeoutError,
    NotConfigured,
    ResponseDataLossError,
)
from scrapy.http import Response
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError as TxConnectionRefusedError
from twisted.python.failure import Failure

from crawler.middlewares.circuitbreaker import (
    PROBE,
    CircuitBreakerMiddleware,
    CircuitConfig,
    HostUnavailableError,
)
from tests.faultserver import FaultServer

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**settings: Any) -> tuple[CircuitBreakerMiddleware, Slot, Clock]:
    values = {"CIRCUIT_FAILURES": 3, "CIRCUIT_COOLDOWN": 10, "CIRCUIT_MAX_COOLDOWN": 25}
    crawler = get_crawler(Spider, {**values, **settings})
    crawler.spider = Spider.from_crawler(crawler, name="t")
    crawler.engine = crawler._create_engine()
    clock = Clock()
    mw = CircuitBreakerMiddleware(crawler, CircuitConfig.from_settings(crawler.settings), clock)
    _, slot = crawler.engine.downloader._get_slot(Request("http://down.test/"))
    return mw, slot, clock


def sent(mw: CircuitBreakerMiddleware, url: str = "http://down.test/x") -> Request:
    """A request that passed process_request and reached the downloader."""
    request = Request(url)
    mw.process_request(request)
    request.meta["download_slot"] = mw.crawler.engine.downloader.get_slot_key(request)  # type: ignore[union-attr]
    return request


def fail(mw: CircuitBreakerMiddleware, exc: Exception | None = None) -> Request:
    request = sent(mw)
    mw.process_exception(request, exc or DownloadTimeoutError("took too long"))
    return request


def answered(mw: CircuitBreakerMiddleware, request: Request, status: int = 200) -> None:
    response = Response(request.url, status=status, request=request)
    mw.response_downloaded(response, request, mw.crawler.spider)


def test_config() -> None:
    with pytest.raises(NotConfigured):
        CircuitConfig.from_settings(Settings({"CIRCUIT_ENABLED": False}))
    config = CircuitConfig.from_settings(
        Settings({"CIRCUIT_FAILURES": 0, "CIRCUIT_COOLDOWN": 30, "CIRCUIT_MAX_COOLDOWN": 5})
    )
    assert (config.failures, config.cooldown, config.max_cooldown) == (1, 30, 30)


def test_opens_after_failures_in_a_row_and_fails_fast_for_that_host_only() -> None:
    mw, _, _ = make()
    fail(mw)
    fail(mw, TxConnectionRefusedError())
    answered(mw, sent(mw), status=503)  # any answer proves the host is up: count reset
    for _ in range(3):
        fail(mw)
    assert mw.crawler.stats.get_value("circuit/opened") == 1
    with pytest.raises(HostUnavailableError, match=r"down\.test .*3 connection failures"):
        sent(mw)
    sent(mw, "http://other.test/")  # other hosts go on
    assert mw.crawler.stats.get_value("circuit/rejected") == 1
    assert mw.crawler.stats.get_value("circuit/failures") == 5


def test_rejected_requests_are_not_retried() -> None:
    mw, _, _ = make(CIRCUIT_FAILURES=1)
    fail(mw)
    request = Request("http://down.test/y")
    with pytest.raises(HostUnavailableError):
        mw.process_request(request)
    assert request.meta["dont_retry"] is True


def test_one_probe_after_the_cooldown_then_closed_on_an_answer() -> None:
    mw, _, clock = make()
    for _ in range(3):
        fail(mw)
    clock.now += 10
    probe = sent(mw)
    assert probe.meta[PROBE] is True
    with pytest.raises(HostUnavailableError, match="probing"):
        sent(mw)  # one probe at a time
    answered(mw, probe, status=404)
    sent(mw)
    assert mw.crawler.stats.get_value("circuit/closed") == 1
    assert mw.crawler.stats.get_value("circuit/probes") == 1


def test_a_failed_probe_doubles_the_cooldown_up_to_the_cap() -> None:
    mw, _, clock = make()
    for _ in range(3):
        fail(mw)
    cooldowns = []
    for _ in range(3):
        clock.now += 30
        probe = sent(mw)
        mw.process_exception(probe, CannotResolveHostError("gone"))
        cooldowns.append(mw.circuits["down.test"].cooldown)
    assert cooldowns == [20, 25, 25]
    assert mw.circuits["down.test"].open_until == clock.now + 25


def test_only_connection_failures_count() -> None:
    mw, _, _ = make(CIRCUIT_FAILURES=1)
    fail(mw, ResponseDataLossError())  # the host answered, partly
    request = Request("http://down.test/z")  # failed before reaching the downloader
    mw.process_exception(request, DownloadTimeoutError())
    sent(mw)
    assert "down.test" not in mw.circuits or mw.circuits["down.test"].cooldown == 0


def test_a_retried_probe_is_not_a_probe() -> None:
    mw, _, _ = make()
    request = Request("http://down.test/x", meta={PROBE: True})
    mw.process_request(request)
    assert PROBE not in request.meta


def test_requests_queued_for_the_host_fail_when_it_opens() -> None:
    mw, slot, _ = make(CIRCUIT_FAILURES=1)
    queued: Deferred[Response] = Deferred()
    waiting = Request("http://down.test/queued")
    slot.queue.append((waiting, queued))
    fail(mw)
    assert not slot.queue
    failures: list[Failure] = []
    queued.addErrback(failures.append)
    assert failures[0].check(HostUnavailableError)
    assert waiting.meta["dont_retry"] is True
    assert mw.crawler.stats.get_value("circuit/rejected") == 1


@pytest.mark.timeout(90)
def test_a_down_host_is_left_alone_while_others_go_on(tmp_path: Path, run_crawl: Any) -> None:
    with FaultServer() as server:
        down = [server.url(f"/never?case=circuit&n={n}") for n in range(6)]
        up = [server.url(f"/page?case=circuit&n={n}", host="localhost") for n in range(3)]
        seeds = tmp_path / "urls.txt"
        seeds.write_text("\n".join(down + up), encoding="utf-8")
        result = run_crawl(
            "pages", "-a", f"urls={seeds}", "-s", "CIRCUIT_FAILURES=2", "-s", "RETRY_TIMES=0",
            "-s", "DOWNLOAD_TIMEOUT=1", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1",
            "-s", "DOWNLOAD_DELAY=0.1", "-s", "HEALTH_ENABLED=False", timeout=80,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        # 2 failures open the circuit; the downloader may already have sent the next request
        # as the second one failed (Scrapy moves its queue on before middlewares see a failure)
        sent = len(server.hits(path="/never"))
        assert sent in (2, 3)
        errors = {row["url"]: row["error"] for row in result.rows("SELECT url, error FROM pages")}
        refused = [errors[url].split(":")[0] for url in down].count("HostUnavailableError")
        assert refused == 6 - sent  # the rest failed at once, without a connection
        assert [errors[url] for url in up] == [None, None, None]  # the other host went on
        (run,) = result.rows("SELECT stats FROM runs")
        stats = json.loads(run["stats"])
        assert (stats["circuit/opened"], stats["circuit/rejected"]) == (1, 6 - sent)
