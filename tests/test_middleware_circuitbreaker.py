"""CircuitBreakerMiddleware on a real downloader (opening, failing fast, probing, closing), and
in a real crawl."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from tests.support import Clock

pytestmark = pytest.mark.timeout(30)


def make(**settings: Any) -> tuple[CircuitBreakerMiddleware, Slot, Clock]:
    """A breaker that fails requests instead of holding them (CIRCUIT_MAX_HOLD=0), unless told."""
    values = {
        "CIRCUIT_FAILURES": 3, "CIRCUIT_COOLDOWN": 10, "CIRCUIT_MAX_COOLDOWN": 25,
        "CIRCUIT_MAX_HOLD": 0,
    }  # fmt: skip
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
    assert config.max_hold == 600
    assert CircuitConfig.from_settings(Settings({"CIRCUIT_MAX_HOLD": -1})).max_hold == 0


def test_an_open_circuit_holds_the_host_queue_instead_of_failing_it() -> None:
    mw, slot, _ = make(CIRCUIT_FAILURES=1, CIRCUIT_MAX_HOLD=60)
    queued: Deferred[Response] = Deferred()
    slot.queue.append((Request("http://down.test/queued"), queued))
    first = sent(mw)
    again = mw.process_exception(first, DownloadTimeoutError())
    # the failure that opened it waits too, its retries untouched
    assert isinstance(again, Request) and again.url == first.url and again.dont_filter
    assert len(slot.queue) == 1 and not queued.called  # still waiting
    assert slot.latercall is mw.circuits["down.test"].timer  # the slot is held
    mw.process_request(Request("http://down.test/new"))  # no error: it joins the held queue
    queued.addErrback(lambda _: None)  # it is sent now, to a name that does not resolve
    answered(mw, sent(mw), status=200)  # the host answers: closed, the queue goes on
    assert slot.latercall is None and not slot.queue and "down.test" not in mw.circuits
    stats = mw.crawler.stats
    assert (stats.get_value("circuit/requeued"), stats.get_value("circuit/rejected")) == (1, None)


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
            "-s", "DOWNLOAD_DELAY=0.1", "-s", "HEALTH_ENABLED=False", "-s", "CIRCUIT_MAX_HOLD=0",
            timeout=80,
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


class _RoomyServer(ThreadingHTTPServer):
    request_queue_size = 128  # the fault is refused connections, not a full listen backlog
    daemon_threads = True


class LateServer:
    """Serves ``/p/N`` on a port of 127.0.0.1 that refuses connections for the first ``after``
    seconds (nothing listens on it yet), then listens for real: a host that comes back."""

    def __init__(self, after: float) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.after = after
        self.hits: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None
        self._timer = threading.Timer(after, self._listen)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _listen(self) -> None:
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits[self.path] += 1
                body = f"<html><title>{self.path}</title><body>up</body></html>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _RoomyServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __enter__(self) -> LateServer:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def crawl_stats(result: Any) -> dict[str, Any]:
    (run,) = result.rows("SELECT stats FROM runs")
    stats: dict[str, Any] = json.loads(run["stats"])
    return stats


@pytest.mark.timeout(90)
def test_requests_wait_for_a_host_that_comes_back(tmp_path: Path, run_crawl: Any) -> None:
    """U6: connections refused (for 1.5-2 s of the crawl: it starts in 1-1.5 s), then the host
    answers: every page is fetched."""
    with LateServer(after=3.0) as server:
        urls = [server.url(f"/p/{n}") for n in range(100)]
        seeds = tmp_path / "urls.txt"
        seeds.write_text("\n".join(urls), encoding="utf-8")
        result = run_crawl(
            "pages", "-a", f"urls={seeds}", "-s", "ROBOTSTXT_OBEY=False",
            "-s", "CIRCUIT_COOLDOWN=0.5", "-s", "CIRCUIT_MAX_COOLDOWN=1", timeout=80,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        rows = {r["url"]: r for r in result.rows("SELECT url, status, error FROM pages")}
        assert {u: (r["status"], r["error"]) for u, r in rows.items()} == {
            u: (200, None) for u in urls
        }
        assert all(server.hits[f"/p/{n}"] >= 1 for n in range(100))
        stats = crawl_stats(result)
        assert stats["circuit/opened"] >= 1 and stats["circuit/closed"] >= 1  # the fault happened
        assert "circuit/rejected" not in stats


@pytest.mark.timeout(60)
def test_a_host_down_past_the_hold_fails_its_requests_with_the_reason(
    tmp_path: Path, run_crawl: Any, refused_url: str
) -> None:
    urls = [f"{refused_url}/{n}" for n in range(20)]
    seeds = tmp_path / "urls.txt"
    seeds.write_text("\n".join(urls), encoding="utf-8")
    result = run_crawl(
        "pages", "-a", f"urls={seeds}", "-s", "ROBOTSTXT_OBEY=False", "-s", "CIRCUIT_FAILURES=1",
        "-s", "CIRCUIT_COOLDOWN=0.5", "-s", "CIRCUIT_MAX_HOLD=2", timeout=50,
    )  # fmt: skip
    errors = {r["url"]: r["error"] for r in result.rows("SELECT url, error FROM pages")}
    assert set(errors) == set(urls)
    for url in urls:
        assert re.fullmatch(
            r"HostUnavailableError: 127\.0\.0\.1 is not answering \(\d+ connection failures in a"
            r" row\): gave up after waiting 2 s \(CIRCUIT_MAX_HOLD\), circuit .*",
            errors[url],
        ), errors[url]
    stats = crawl_stats(result)
    assert stats["circuit/probes"] >= 2  # it was asked again while the requests waited
    assert stats["circuit/gave_up"] == 1 and stats["circuit/rejected"] == 20


def test_a_healthy_crawl_pays_no_per_request_signal() -> None:
    """Until a host fails, the breaker's signal handlers would do nothing: they are connected at
    the first failure, and then close the circuit when the host answers."""
    from pydispatch import dispatcher
    from scrapy import signals

    mw, _, _ = make()
    mw = CircuitBreakerMiddleware.from_crawler(mw.crawler)

    def connected() -> set[str]:
        found = set()
        for signal in (signals.response_downloaded, signals.request_reached_downloader):
            live = dispatcher.liveReceivers(
                dispatcher.getAllReceivers(mw.crawler.signals.sender, signal)
            )
            found |= {r.__name__ for r in live if getattr(r, "__self__", None) is mw}
        return found

    sent(mw)
    assert connected() == set()
    request = fail(mw)
    assert connected() == {"response_downloaded", "request_reached_downloader"}
    response = Response(request.url, status=200, request=request)
    mw.crawler.signals.send_catch_log(
        signals.response_downloaded, response=response, request=request, spider=mw.crawler.spider
    )
    assert "down.test" not in mw.circuits  # the host answered: its circuit is gone
