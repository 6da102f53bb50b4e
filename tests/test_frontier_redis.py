"""The Redis frontier (``crawler.frontier.redisbackend``) against a real redis-server: leases,
the dupefilter, retries, reclaim, release, the end of a job, corrupt entries; the connection
module; and the one-line errors of `scrapy crawl -s FRONTIER=redis`.

The crawls with several worker processes (R1–R3 of shared/docs/faults.md) are in
``test_faults_redis.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import scrapy
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from crawler.frontier.backend import DONE, FAILED, LEASED, QUEUED, Batch, NewRequest
from crawler.frontier.jobs import AlreadyRunning
from crawler.frontier.redisbackend import RedisBackend, RedisConfig
from crawler.frontier.redisconn import RedisKeys, RedisUnavailable, check
from crawler.frontier.scheduler import FrontierConfig, frontier_wanted
from crawler.safety.secrets import mask_url_credentials, masked
from tests.support import run_crawl_in

if TYPE_CHECKING:
    from tests.redisserver import RedisServer


class Shop(scrapy.Spider):
    name = "shop"

    def parse(self, response: Any) -> Any:
        yield {"url": response.url}


def backend_for(
    server: RedisServer, *, worker: int = 0, fresh: bool = False, pid: int | None = None
) -> RedisBackend:
    crawler = get_crawler(Shop, {"REDIS_URL": server.url, "SQLITE_ENABLED": False})
    crawler.stats.open_spider()  # type: ignore[union-attr]
    config = FrontierConfig(lease_seconds=5, worker=worker, fresh=fresh)
    backend = RedisBackend(crawler, config, RedisConfig(url=server.url, retry_seconds=2))
    if pid is not None:  # another process of this host
        backend.pid, backend.me = pid, f"{backend.host}:0:{worker}:{pid}"
    backend.open(Shop())
    return backend


def owner(backend: RedisBackend) -> str:
    """The scheduler's owner string of the backend's process (``FrontierScheduler.owner``)."""
    return backend.me.split(":", 1)[1]


def new(n: int, priority: int = 0) -> NewRequest:
    url = f"https://shop.example/{n}"
    return NewRequest(f"fp{n}", url, priority, 0, json.dumps({"url": url, "priority": priority}))


def fingerprints(rows: list[Any]) -> list[str]:
    return [row.fingerprint for row in rows]


def test_the_keys_of_a_job_are_named_in_one_place() -> None:
    keys = RedisKeys.for_job(Settings({"REDIS_KEY_PREFIX": "pfx"}), "shop", {"a": 1})
    assert keys.queue == f"pfx:shop:{keys.jobkey}:queue"
    assert keys.items.endswith(":items") and keys.workers.endswith(":workers")
    assert len(set(keys.frontier_keys())) == 9
    assert keys.jobkey != RedisKeys.for_job(Settings(), "shop", {"a": 2}).jobkey


def test_redis_frontier_needs_no_sqlite_store() -> None:
    settings = Settings({"FRONTIER": "redis", "RUN_RECORD": True, "SQLITE_ENABLED": False})
    assert frontier_wanted(settings)


def test_leases_come_by_priority_then_age_and_new_requests_are_deduplicated(
    redis_server: RedisServer,
) -> None:
    backend = backend_for(redis_server)
    backend.commit(Batch(new=[new(1), new(2), new(3, priority=5), new(4, priority=-1)]))
    backend.commit(Batch(new=[new(1), new(5)]))  # fp1 again: the dupefilter drops it
    assert backend.find("fp1") == QUEUED and backend.find("nope") is None
    rows, failed = backend.lease("me", 10, time.time() + 60, 3)
    assert (fingerprints(rows), failed) == (["fp3", "fp1", "fp2", "fp5", "fp4"], 0)
    assert all(row.attempts == 0 and row.id == row.fingerprint for row in rows)
    assert json.loads(rows[0].request or "")["url"] == "https://shop.example/3"
    assert backend.find("fp1") == LEASED
    backend.commit(Batch(done=["fp1"], failed=[("fp2", "boom")]))
    assert (backend.find("fp1"), backend.find("fp2")) == (DONE, FAILED)
    assert backend.counts() == {"queued": 0, "leased": 3, "done": 1, "failed": 1}
    backend.commit(Batch(new=[new(1)]))  # done: still seen, never queued again
    assert backend.counts()["queued"] == 0


def test_sent_requests_count_attempts_and_max_attempts_fail_a_request(
    redis_server: RedisServer,
) -> None:
    backend = backend_for(redis_server)
    backend.commit(Batch(new=[new(1), new(2), new(3)]))
    for attempt in (0, 1):
        rows, _ = backend.lease("me", 10, time.time() - 1, 2)  # expired at once
        assert {row.fingerprint: row.attempts for row in rows} == {
            "fp1": attempt, "fp2": attempt, "fp3": 0,
        }  # fmt: skip
        backend.commit(Batch(started=["fp1", "fp2"]))  # sent; fp3 leased but never sent
        assert backend.reclaim_expired(time.time()) == 3
    backend.commit(Batch(again=[new(1)]))  # its process queued it again: attempts start over
    rows, failed = backend.lease("me", 10, time.time() + 60, 2)
    attempts = {row.fingerprint: row.attempts for row in rows}
    assert (attempts, failed) == ({"fp1": 0, "fp3": 0}, 1)
    assert backend.find("fp2") == FAILED
    assert backend.counts()["failed"] == 1


def test_expired_leases_come_back_and_live_ones_are_renewed(redis_server: RedisServer) -> None:
    backend = backend_for(redis_server)
    backend.commit(Batch(new=[new(1), new(2)]))
    backend.lease("a", 1, time.time() + 2, 3)
    backend.lease("b", 1, time.time() + 2, 3)
    backend.renew("a", time.time() + 60)
    assert backend.reclaim_expired(time.time() + 10) == 1  # b's lease only
    assert backend.find("fp2") == QUEUED and backend.find("fp1") == LEASED


def test_release_gives_back_unstarted_leases_and_the_rest(
    redis_server: RedisServer,
) -> None:
    backend = backend_for(redis_server)
    backend.commit(Batch(new=[new(1), new(2), new(3)]))
    backend.lease(owner(backend), 3, time.time() + 60, 3)
    backend.commit(Batch(started=["fp2", "fp3"]))
    other = backend_for(redis_server, pid=1)  # a live worker's leases are left alone
    assert other.counts()["leased"] == 3
    backend.release(owner(backend), ["fp1"])
    assert backend.counts() == {"queued": 3, "leased": 0, "done": 0, "failed": 0}
    again, _ = other.lease("other", 3, time.time() + 60, 3)
    attempts = {row.fingerprint: row.attempts for row in again}
    assert attempts == {"fp1": 0, "fp2": 1, "fp3": 1}


def test_has_work_counts_the_queue_and_the_leases_of_others(redis_server: RedisServer) -> None:
    one, two = backend_for(redis_server), backend_for(redis_server, worker=1, pid=1)
    assert not one.has_work("one")
    one.commit(Batch(new=[new(1)]))
    assert one.has_work("one") and two.has_work("two")
    two.lease("two", 5, time.time() + 60, 3)
    one._busy_until = two._busy_until = 0.0  # the back-off between polls, skipped here
    assert one.has_work("one") and not two.has_work("two")
    two.commit(Batch(done=["fp1"]))
    one._busy_until = 0.0
    assert not one.has_work("one")


def test_a_finishing_worker_never_clears_the_job(redis_server: RedisServer) -> None:
    one, two = backend_for(redis_server), backend_for(redis_server, worker=1, pid=1)
    one.commit(Batch(new=[new(1), new(2)], seeded=True))
    two.lease("two", 1, time.time() + 60, 3)
    assert one.close("finished", finished=True, resumable=False)["queued"] == 1
    with redis_server.client() as client:
        assert client.hget(one.keys.meta, "state") == "open"  # type: ignore[union-attr]
        assert client.zcard(one.keys.queue) == 1  # type: ignore[union-attr]
        assert client.hlen(one.keys.seen) == 2  # type: ignore[union-attr]
    assert two.job_seeded()


def test_the_job_finishes_when_nothing_is_queued_or_leased_and_a_rerun_starts_afresh(
    redis_server: RedisServer,
) -> None:
    backend = backend_for(redis_server)
    backend.commit(Batch(new=[new(1)], seeded=True))
    backend.lease("me", 1, time.time() + 60, 3)
    backend.commit(Batch(done=["fp1"]))
    assert backend.close("finished", finished=True, resumable=False)["done"] == 1
    with redis_server.client() as client:
        assert client.hget(backend.keys.meta, "state") == "finished"  # type: ignore[union-attr]
    again = backend_for(redis_server)
    assert again.find("fp1") is None and not again.seeded


def test_a_rerun_resumes_an_open_job_and_takes_back_the_leases_of_the_dead(
    redis_server: RedisServer,
) -> None:
    dead = backend_for(redis_server, pid=2**22 + 7)  # no such pid on this host
    dead.commit(Batch(new=[new(1), new(2)], seeded=True))
    dead.lease(owner(dead), 1, time.time() + 600, 3)
    rerun = backend_for(redis_server)
    assert rerun.seeded
    assert rerun.counts() == {"queued": 2, "leased": 0, "done": 0, "failed": 0}


def test_fresh_is_refused_while_other_workers_are_alive(redis_server: RedisServer) -> None:
    backend_for(redis_server).commit(Batch(new=[new(1)]))
    with pytest.raises(AlreadyRunning, match="FRONTIER_FRESH"):
        backend_for(redis_server, fresh=True, pid=1)


def test_corrupt_queue_entries_are_skipped_logged_and_counted(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    backend = backend_for(redis_server)
    backend.commit(Batch(new=[new(1)]))
    assert backend.keys is not None
    with redis_server.client() as client:
        client.zadd(backend.keys.queue, {"orphan": -1})  # a queue member without request data
    rows, _ = backend.lease("me", 5, time.time() + 60, 3)
    assert fingerprints(rows) == ["fp1"]
    assert backend.find("orphan") == FAILED
    assert f"queue entry orphan of {backend.keys.queue} skipped" in caplog.text
    assert backend.crawler.stats.get_value("frontier/bad_rows") == 1  # type: ignore[union-attr]


def test_a_key_of_the_wrong_type_is_named(redis_server: RedisServer) -> None:
    from crawler.frontier.backend import BackendUnusable

    keys = RedisKeys.for_job(Settings(), "shop", {})
    with redis_server.client() as client:
        client.set(keys.queue, "not a zset")
    with pytest.raises(BackendUnusable, match=f"Redis key {keys.queue} is a string"):
        backend_for(redis_server)


def test_connection_errors_are_one_line_without_the_password(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with pytest.raises(RedisUnavailable) as refused:
        check(Settings({"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}))
    assert str(refused.value).startswith("Redis at redis://***@127.0.0.1:1/0 unreachable: ")
    assert "hunter2" not in str(refused.value) and "\n" not in str(refused.value)
    assert check(Settings({"REDIS_URL": redis_server.url})).ping()


def test_the_redis_url_password_is_masked() -> None:
    url = "rediss://user:s3cret@redis.example:6380/0"
    assert mask_url_credentials(f"REDIS_URL={url}") == "REDIS_URL=rediss://***@redis.example:6380/0"
    assert "s3cret" not in str(masked("REDIS_URL", url))


def test_unreachable_redis_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_crawl_in(
        tmp_path, "products", "-a", "start_url=http://127.0.0.1:1/",
        "-s", "FRONTIER=redis", "-s", "REDIS_URL=redis://:pw@127.0.0.1:1/0", subprocess=True,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines == [
        "error: Redis at redis://***@127.0.0.1:1/0 unreachable: "
        + lines[0].split("unreachable: ", 1)[-1]
    ]
    assert "pw@" not in result.stderr


def test_a_wrong_password_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from tests.redisserver import MISSING, REDIS_SERVER
    from tests.redisserver import RedisServer as Server

    if not REDIS_SERVER.exists():
        pytest.skip(MISSING)
    server = Server(tmp_path / "redis", password="right").start()
    try:
        url = f"redis://:wrong@127.0.0.1:{server.port}/0"
        result = run_crawl_in(
            tmp_path, "products", "-a", "start_url=http://127.0.0.1:1/",
            "-s", "FRONTIER=redis", "-s", f"REDIS_URL={url}", subprocess=True,
        )  # fmt: skip
    finally:
        server.kill()
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refused the credentials" in errors[0], result.stderr[-2000:]
    assert "wrong" not in errors[0]


def test_an_idle_worker_backs_off_instead_of_polling_redis(redis_server: RedisServer) -> None:
    one, two = backend_for(redis_server), backend_for(redis_server, worker=1, pid=1)
    one.commit(Batch(new=[new(1)]))
    two.lease(owner(two), 5, time.time() + 60, 3)  # the only request, leased by another worker

    def scripts_run() -> int:
        with redis_server.client() as client:
            stats = client.info("commandstats")
        return sum(int(stats.get(name, {}).get("calls", 0)) for name in ("cmdstat_evalsha",))

    one._idle_wait = one.redis_config.idle_max_seconds  # idle for a while: the longest wait
    before = scripts_run()
    asked = [one.has_work(owner(one)) for _ in range(200)]
    leased = [one.lease(owner(one), 5, time.time() + 60, 3)[0] for _ in range(200)]
    assert all(asked) and not any(leased)
    assert scripts_run() - before <= 4  # one or two calls each: the rest wait for the back-off
    assert one.redis_config.idle_max_seconds == 5.0  # REDIS_IDLE_MAX_SECONDS caps the wait


def test_rediss_urls_use_tls_and_redis_params_reach_the_client() -> None:
    import redis

    from crawler.frontier.redisconn import connect

    settings = Settings(
        {
            "REDIS_URL": "rediss://:pw@redis.example:6380/2",
            "REDIS_PARAMS": {"socket_timeout": 3, "ssl_cert_reqs": "none"},
        }
    )
    client = connect(settings)  # no I/O until a command
    pool = client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    kwargs = pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == (
        "redis.example", 6380, 2, "pw",
    )  # fmt: skip
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (3, 5)
    assert kwargs["decode_responses"] is True


def test_foreign_counter_values_and_a_key_replaced_mid_crawl(redis_server: RedisServer) -> None:
    from crawler.frontier.backend import BackendError

    backend = backend_for(redis_server)
    assert backend.keys is not None
    backend.commit(Batch(new=[new(1)]))
    with redis_server.client() as client:
        client.hset(backend.keys.meta, mapping={"seq": "x", "done": "?"})
        client.hset(backend.keys.attempts, "fp1", "many")
    backend.commit(Batch(new=[new(2)]))  # no "not an integer" half-way through the script
    rows, _ = backend.lease(owner(backend), 5, time.time() + 60, 3)
    backend.commit(Batch(started=["fp1"], done=["fp1"]))
    assert fingerprints(rows) == ["fp1", "fp2"] and backend.find("fp1") == DONE
    with redis_server.client() as client:
        client.delete(backend.keys.inflight)
        client.set(backend.keys.inflight, "someone else's")
    with pytest.raises(BackendError, match=f"Redis key {backend.keys.inflight} is a string"):
        backend.commit(Batch(done=["fp2"]))


def test_a_crawl_with_a_password_masks_it_everywhere(tmp_path: Path, demo_site: Any) -> None:
    from tests.redisserver import MISSING, REDIS_SERVER
    from tests.redisserver import RedisServer as Server

    if not REDIS_SERVER.exists():
        pytest.skip(MISSING)
    server = Server(tmp_path / "redis", password="s3cret-pw").start()
    try:
        result = run_crawl_in(
            tmp_path, "products", "-a", f"start_url={demo_site.url}", "-a", "max_products=5",
            "-s", "FRONTIER=redis", "-s", f"REDIS_URL={server.url}",
        )  # fmt: skip
    finally:
        server.kill()
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = result.rows("SELECT settings, items FROM runs")
    assert run["items"] == 5
    assert json.loads(run["settings"])["REDIS_URL"] == f"redis://***@127.0.0.1:{server.port}/0"
    assert "s3cret-pw" not in result.stdout + result.stderr
    for path in tmp_path.glob("crawler.sqlite*"):  # the store, its WAL
        assert b"s3cret-pw" not in path.read_bytes(), path
