"""Faults R1–R3 (shared/docs/faults.md) of the Redis frontier, with real processes: workers
started by hand (`scrapy crawl products -s FRONTIER=redis …`) on one job, a real redis-server
(AOF on), the demo shop, one SQLite store file shared by the workers for their items.

Each worker is an independent crawl (a run row of its own); the one with ``WORKER_INDEX`` 0 reads
``start()``, the others skip it and wait for the job to be seeded (``FrontierStartMiddleware``).
``WORKER_COUNT`` shares the host's politeness out and keeps each worker's share of the items from
being judged against the others' runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from crawler.demo.catalog import PRODUCT_COUNT
from crawler.demo.server import DemoSite
from tests.support import _die_with_parent, scrapy_env

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.redisserver import RedisServer

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def distant_site() -> Iterator[DemoSite]:
    """The demo shop 30 ms away: a crawl lasts long enough to hurt it half-way."""
    with DemoSite(slow_seconds=0.3, page_delay=0.03) as site:
        yield site


class Worker:
    def __init__(self, workdir: Path, index: int, proc: subprocess.Popen[bytes]) -> None:
        self.workdir, self.index, self.proc = workdir, index, proc

    @property
    def log(self) -> str:
        path = self.workdir / f"worker-{self.index}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait(self, timeout: float = 180) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker {self.index} did not end:\n{self.log[-3000:]}")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def problems(log: str) -> list[str]:
    """A worker's WARNING, ERROR and CRITICAL lines and its close line: why it ended as it did."""
    marks = (" WARNING: ", " ERROR: ", " CRITICAL: ", "Spider closed", "Traceback")
    return [line for line in log.splitlines() if any(mark in line for mark in marks)][-30:]


def start_worker(
    workdir: Path, site: DemoSite, server: RedisServer, index: int, *extra: str
) -> Worker:
    command = [
        sys.executable, "-m", "scrapy", "crawl", "products", "-a", f"start_url={site.url}",
        "-s", "FRONTIER=redis", "-s", f"REDIS_URL={server.url}",
        "-s", f"SQLITE_PATH={workdir / 'crawler.sqlite'}",
        "-s", f"CSV_EXPORT_DIR={workdir / 'out' / str(index)}", "-s", "CRAWL_PROFILE=fast",
        "-s", f"WORKER_INDEX={index}", "-s", "WORKER_COUNT=3",
        "-s", "FRONTIER_LEASE_SECONDS=5", "-s", "REDIS_IDLE_MAX_SECONDS=0.5",
        "-s", "SQLITE_BATCH_SECONDS=0.2", "-s", "SQLITE_BATCH_SIZE=5",
        "-s", f"LOG_FILE={workdir / f'worker-{index}.log'}", *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=workdir, env=scrapy_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
    )  # fmt: skip
    return Worker(workdir, index, proc)


def rows(db: Path, sql: str) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()


def stored(db: Path) -> int:
    try:
        return int(rows(db, "SELECT count(*) FROM products")[0][0])
    except sqlite3.Error:
        return 0  # not created yet


def wait_until(check: Callable[[], bool], workers: list[Worker], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for worker in workers:
            if worker.proc.poll() is not None:
                pytest.fail(f"worker {worker.index} ended early:\n{worker.log[-3000:]}")
        time.sleep(0.1)
    pytest.fail("the crawl never got far enough")


def job_keys(server: RedisServer) -> str:
    with server.client() as client:
        (meta,) = client.keys("crawler:products:*:meta")
    return str(meta).removesuffix(":meta")


def assert_every_product_once_and_the_job_finished(workdir: Path, server: RedisServer) -> None:
    db = workdir / "crawler.sqlite"
    (found,) = rows(db, "SELECT count(*) AS n, count(DISTINCT url) AS urls FROM products")
    # the demo shop's products, every one stored once (2 of them are rejected: no valid price)
    assert (found["n"], found["urls"]) == (PRODUCT_COUNT - 2, PRODUCT_COUNT - 2)
    base = job_keys(server)
    with server.client() as client:
        assert client.zcard(f"{base}:queue") == 0
        assert client.zcard(f"{base}:inflight") == 0
        assert client.hget(f"{base}:meta", "state") == "finished"
        states = client.hvals(f"{base}:seen")
    assert states and set(states) <= {"done", "failed"}, sorted(set(states))


def stats_of_runs(workdir: Path) -> list[dict[str, Any]]:
    found = rows(workdir / "crawler.sqlite", "SELECT stats FROM runs ORDER BY id")
    return [json.loads(row["stats"] or "{}") for row in found]


def test_r1_a_worker_killed_mid_crawl_loses_nothing(
    tmp_path: Path, distant_site: DemoSite, redis_server: RedisServer
) -> None:
    workers = [start_worker(tmp_path, distant_site, redis_server, k) for k in range(3)]
    try:
        wait_until(lambda: stored(tmp_path / "crawler.sqlite") >= 150, workers)
        os.kill(workers[0].proc.pid, signal.SIGKILL)  # the seeder, with requests in flight
        assert workers[0].wait() == -signal.SIGKILL
        base = job_keys(redis_server)
        with redis_server.client() as client:  # its leases, as it left them
            owners = client.hvals(f"{base}:owners")
        held = sum(1 for owner in owners if str(owner).endswith(f":{workers[0].proc.pid}"))
        statuses = [worker.wait() for worker in workers[1:]]
    finally:
        for worker in workers:
            worker.kill()
    assert statuses == [0, 0], [problems(w.log) for w in workers[1:]]
    assert_every_product_once_and_the_job_finished(tmp_path, redis_server)
    logs = "".join(worker.log for worker in workers[1:])
    if held:  # what it held went back to the queue through the others (on a busy machine it
        # may have had nothing in flight at the kill)
        assert "expired leases (their process is gone) queued again" in logs


def test_r2_a_worker_stopped_gracefully_leaves_the_crawl_to_the_others(
    tmp_path: Path, distant_site: DemoSite, redis_server: RedisServer
) -> None:
    workers = [start_worker(tmp_path, distant_site, redis_server, k) for k in range(3)]
    try:
        wait_until(lambda: stored(tmp_path / "crawler.sqlite") >= 150, workers)
        os.kill(workers[1].proc.pid, signal.SIGINT)
        workers[1].wait()
        base = job_keys(redis_server)
        with redis_server.client() as client:  # the stopped worker cleared nothing
            assert client.hget(f"{base}:meta", "state") == "open"
            assert client.hlen(f"{base}:seen") > 150
        statuses = [workers[0].wait(), workers[2].wait()]
    finally:
        for worker in workers:
            worker.kill()
    assert "Spider closed (shutdown)" in workers[1].log
    assert statuses == [0, 0], [workers[0].log[-3000:], workers[2].log[-3000:]]
    assert_every_product_once_and_the_job_finished(tmp_path, redis_server)


def test_r3_redis_restarted_mid_crawl_the_workers_back_off_reconnect_and_finish(
    tmp_path: Path, distant_site: DemoSite, redis_server: RedisServer
) -> None:
    # leases outlive the outage: each worker goes on with its own requests when Redis is back
    longer = ("-s", "FRONTIER_LEASE_SECONDS=60")
    workers = [start_worker(tmp_path, distant_site, redis_server, k, *longer) for k in range(2)]
    try:
        wait_until(lambda: stored(tmp_path / "crawler.sqlite") >= 150, workers)
        redis_server.stop()  # SIGTERM: redis-server writes its AOF and exits
        time.sleep(4)
        redis_server.start()  # the same port and data directory
        statuses = [worker.wait() for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert statuses == [0, 0], [problems(w.log) for w in workers]
    assert_every_product_once_and_the_job_finished(tmp_path, redis_server)
    logs = "".join(worker.log for worker in workers)
    assert "retrying for up to 120 s" in logs and "Frontier: Redis answers again after" in logs
    assert "expired leases" not in logs
    retries = [stats.get("frontier/redis_retries", 0) for stats in stats_of_runs(tmp_path)]
    # back-off with jitter (0.2 s doubling to 5 s) over about 4 s: a few tries, no busy loop
    assert 0 < max(retries) <= 40, retries


def test_corrupt_entries_in_the_queue_are_logged_skipped_and_counted(
    tmp_path: Path, distant_site: DemoSite, redis_server: RedisServer
) -> None:
    (worker,) = [start_worker(tmp_path, distant_site, redis_server, 0)]
    try:
        wait_until(lambda: stored(tmp_path / "crawler.sqlite") >= 20, [worker])
        base = job_keys(redis_server)
        with redis_server.client() as client:  # first in the queue (priority 1000)
            client.hset(f"{base}:requests", "garbled", "{not json")
            client.zadd(f"{base}:queue", {"garbled": -1e15, "orphan": -1e15})
            client.hset(f"{base}:seen", mapping={"garbled": "queued", "orphan": "queued"})
        status = worker.wait()
    finally:
        worker.kill()
    assert status == 0, worker.log[-3000:]
    assert f"queue entry orphan of {base}:queue skipped: no request data in {base}:requests" in (
        worker.log
    )
    assert f"row garbled of job {base} skipped: not JSON" in worker.log
    (stats,) = stats_of_runs(tmp_path)
    assert stats["frontier/bad_rows"] == 2
    assert_every_product_once_and_the_job_finished(tmp_path, redis_server)


def test_redis_gone_for_good_stops_the_crawl_after_the_retry_budget(
    tmp_path: Path, distant_site: DemoSite, redis_server: RedisServer
) -> None:
    worker = start_worker(tmp_path, distant_site, redis_server, 0, "-s", "REDIS_RETRY_SECONDS=3")
    try:
        wait_until(lambda: stored(tmp_path / "crawler.sqlite") >= 20, [worker])
        redis_server.kill()
        status = worker.wait()
    finally:
        worker.kill()
    assert status == 1, worker.log[-3000:]
    assert "retrying for up to 3 s" in worker.log
    assert "writes failed in a row, stopping the crawl" in worker.log
    (run,) = rows(tmp_path / "crawler.sqlite", "SELECT finish_reason, exit_status FROM runs")
    assert (run["finish_reason"], run["exit_status"]) == ("store_error", 1)
