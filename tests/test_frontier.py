"""The durable frontier: requests as JSON, the SQL of leases, and crawls through the scheduler.

The process-level faults (kill -9, SIGINT, disk full, two crawls at once) are in
``test_faults_durability.py``; here the pieces are checked one by one, and whole crawls run in
this process.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import scrapy
from scrapy.http import FormRequest, JsonRequest

from crawler.frontier import codec
from crawler.frontier.jobs import AlreadyRunning, choose_job, job_key
from crawler.spiders.pages import PagesSpider
from crawler.storage import frontier as sql
from crawler.storage import open_store
from crawler.storage.liveness import this_host
from crawler.storage.schema import transaction
from tests.inprocess import crawl_spider_class

if TYPE_CHECKING:
    from collections.abc import Iterator

    from crawler.demo.server import DemoSite


class Shop(scrapy.Spider):
    name = "shop"

    def parse(self, response: Any) -> Any:
        yield {"url": response.url}

    def parse_item(self, response: Any, page: int = 0) -> Any:
        yield {"url": response.url, "page": page}

    def failed(self, failure: Any) -> None:
        pass


# --- codec ------------------------------------------------------------------------------------
def test_a_request_survives_the_round_trip() -> None:
    spider = Shop()
    request = scrapy.Request(
        "https://example.com/p?q=1",
        method="POST",
        body=b"\x00\xffbinary",
        headers={"X-Token": "abc", "Accept": ["a", "b"]},
        cookies={"session": "1"},
        meta={"depth": 3, "note": {"a": [1, 2]}},
        cb_kwargs={"page": 7},
        priority=-5,
        dont_filter=True,
        callback=spider.parse_item,
        errback=spider.failed,
        flags=["x"],
    )
    text, dropped = codec.encode(request, spider)
    back = codec.decode(text, spider)
    assert dropped == []
    assert (back.url, back.method, back.body, back.priority, back.dont_filter) == (
        request.url, "POST", b"\x00\xffbinary", -5, True,
    )  # fmt: skip
    assert back.headers.getlist("Accept") == [b"a", b"b"]
    assert back.meta == {"depth": 3, "note": {"a": [1, 2]}}
    assert back.cb_kwargs == {"page": 7}
    assert back.callback == spider.parse_item and back.errback == spider.failed
    assert back.cookies == {"session": "1"} and back.flags == ["x"]


def test_request_subclasses_keep_their_class() -> None:
    spider = Shop()
    for request in (
        FormRequest("https://example.com/f", formdata={"a": "1"}),
        JsonRequest("https://example.com/j", data={"a": 1}),
    ):
        back = codec.decode(codec.encode(request, spider)[0], spider)
        assert type(back) is type(request) and back.body == request.body


def test_meta_objects_are_left_out_and_named() -> None:
    spider = Shop()
    request = scrapy.Request("https://example.com/", meta={"keep": 1, "page": object()})
    text, dropped = codec.encode(request, spider)
    assert dropped == ["page"]
    assert codec.decode(text, spider).meta == {"keep": 1}


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (scrapy.Request("https://example.com/", callback=lambda r: None), "not an instance method"),
        (scrapy.Request("https://example.com/", cb_kwargs={"x": object()}), "cb_kwargs"),
    ],
)
def test_what_json_cannot_hold_is_unstorable(request_: scrapy.Request, why: str) -> None:
    with pytest.raises(codec.Unstorable, match=why):
        codec.encode(request_, Shop())


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "not JSON"),
        ('["a list"]', "no url"),
        ('{"url": "https://e.com/", "_class": "os.system"}', "not a Request class"),
        ('{"url": "https://e.com/", "_class": "nowhere.Evil"}', "not a Request class"),
        ('{"url": "https://e.com/", "callback": "no_such_method"}', "no method"),
        ('{"url": "no scheme"}', "cannot rebuild"),
    ],
)
def test_foreign_rows_are_refused_without_importing_anything(text: str, why: str) -> None:
    with pytest.raises(codec.BadRow, match=why):
        codec.decode(text, Shop())


# --- SQL: jobs, leases ----------------------------------------------------------------------
@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    with open_store(tmp_path / "s.sqlite") as store:
        yield store.conn


def new(n: int, priority: int = 0) -> sql.NewRequest:
    return sql.NewRequest(f"fp{n}", f"https://e.com/{n}", priority, 0, f'{{"url": "u{n}"}}')


def test_leases_come_by_priority_then_age_and_are_unique(conn: sqlite3.Connection) -> None:
    job = sql.create_job(conn, "s", "k", "2026-12-01T00:00:00+00:00")
    with transaction(conn):
        sql.insert(conn, job, [new(1), new(2, priority=5), new(3), new(1)])  # fp1 twice
    with transaction(conn):
        first, _ = sql.lease(conn, job, owner="a", limit=2, deadline=9e9, max_attempts=3)
    with transaction(conn):
        second, _ = sql.lease(conn, job, owner="b", limit=5, deadline=9e9, max_attempts=3)
    assert [r.fingerprint for r in first] == ["fp2", "fp1"]
    assert [r.fingerprint for r in second] == ["fp3"]
    assert sql.counts(conn, job) == {"queued": 0, "leased": 3, "done": 0, "failed": 0}


def test_expired_leases_return_and_too_many_attempts_fail(conn: sqlite3.Connection) -> None:
    job = sql.create_job(conn, "s", "k", "2026-12-01T00:00:00+00:00")
    with transaction(conn):
        sql.insert(conn, job, [new(1), new(2)])
    for attempt in range(3):  # a process sends one of them, dies, three times
        with transaction(conn):
            rows, failed = sql.lease(conn, job, owner="x", limit=5, deadline=1.0, max_attempts=3)
            sql.started(conn, job, [rows[0].id])  # fp1 sent; fp2 only leased: no attempt
        assert (len(rows), failed) == (2, 0), attempt
        with transaction(conn):
            assert sql.reclaim(conn, job, now=time.time()) == 2
    with transaction(conn):
        rows, failed = sql.lease(conn, job, owner="y", limit=5, deadline=9e9, max_attempts=3)
    assert ([r.fingerprint for r in rows], failed) == (["fp2"], 1)
    failures = conn.execute("SELECT fingerprint, error FROM frontier WHERE state = 'failed'")
    assert [tuple(r) for r in failures] == [("fp1", "sent 3 times without finishing")]


def test_a_live_lease_is_renewed_and_kept(conn: sqlite3.Connection) -> None:
    job = sql.create_job(conn, "s", "k", "2026-12-01T00:00:00+00:00")
    with transaction(conn):
        sql.insert(conn, job, [new(1)])
        sql.lease(conn, job, owner="me", limit=1, deadline=time.time() + 0.01, max_attempts=3)
        sql.renew(conn, job, "me", time.time() + 300)
    time.sleep(0.02)
    with transaction(conn):
        assert sql.reclaim(conn, job, now=time.time()) == 0


def test_finished_rows_keep_only_their_fingerprint(conn: sqlite3.Connection) -> None:
    job = sql.create_job(conn, "s", "k", "2026-12-01T00:00:00+00:00")
    with transaction(conn):
        sql.insert(conn, job, [new(1), new(2)])
        rows, _ = sql.lease(conn, job, owner="me", limit=2, deadline=9e9, max_attempts=3)
        sql.finish(conn, job, [rows[0].id], [(rows[1].id, "ValueError: boom")])
    found = conn.execute("SELECT fingerprint, state, request, error FROM frontier ORDER BY id")
    assert [tuple(r) for r in found] == [
        ("fp1", "done", None, None),
        ("fp2", "failed", None, "ValueError: boom"),
    ]
    assert sql.find(conn, job, "fp1") == (rows[0].id, "done")  # still "seen"


def test_a_foreign_frontier_table_is_named(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as store:
        store.conn.execute("DROP TABLE frontier")
        store.conn.execute("CREATE TABLE frontier (id INTEGER PRIMARY KEY, url TEXT)")
        with pytest.raises(sqlite3.DatabaseError, match="not ours: missing columns attempts"):
            sql.check_table(store.conn)


def choose(conn: sqlite3.Connection, key: str, **options: Any) -> Any:
    from datetime import UTC, datetime

    settings: dict[str, Any] = {
        "spider": "s", "key": key, "fresh": False, "max_age_seconds": 86400.0,
        "now": datetime.now(UTC), "stale_seconds": 60.0, "host": this_host(),
    }  # fmt: skip
    return choose_job(conn, **(settings | options))


def test_an_unfinished_job_is_resumed_unless_fresh_or_too_old(conn: sqlite3.Connection) -> None:
    from datetime import UTC, datetime, timedelta

    key = job_key("s", {"start_url": "https://e.com/"})
    assert key == job_key("s", {"start_url": "https://e.com/"}) != job_key("s", {})
    first = choose(conn, key)
    assert not first.resumed
    with transaction(conn):
        sql.insert(conn, first.job_id, [new(1), new(2)])
        sql.lease(conn, first.job_id, owner="gone", limit=1, deadline=9e9, max_attempts=3)
    again = choose(conn, key)
    assert (again.job_id, again.resumed, again.queued) == (first.job_id, True, 2)
    assert sql.counts(conn, first.job_id)["leased"] == 0  # the dead process's lease is back
    later = datetime.now(UTC) + timedelta(days=2)
    old = choose(conn, key, now=later)
    assert not old.resumed and "FRONTIER_RESUME_MAX_AGE" in old.note
    fresh = choose(conn, key, fresh=True)
    assert not fresh.resumed and fresh.job_id != old.job_id and "FRONTIER_FRESH" in fresh.note


def test_a_live_run_on_the_job_refuses_a_second_crawl(conn: sqlite3.Connection) -> None:
    import os
    from datetime import UTC, datetime

    key = job_key("s", {})
    job = choose(conn, key).job_id
    now = datetime.now(UTC).isoformat()
    conn.execute(
        "INSERT INTO runs (id, spider, started_at, job_id) VALUES (7, 's', ?, ?)", (now, job)
    )
    conn.execute(
        "INSERT INTO run_workers (run_id, worker, host, pid, started_at, heartbeat_at)"
        " VALUES (7, 0, ?, ?, ?, ?)",
        (this_host(), os.getpid(), now, now),
    )
    with pytest.raises(AlreadyRunning, match=r"already crawling as run 7 \(pid \d+ on "):
        choose(conn, key)


# --- crawls -----------------------------------------------------------------------------------
class Site(scrapy.Spider):
    """The tutorial's shape: follow the demo shop's catalog and product links, yield dicts."""

    name = "frontier_site"
    start_url = ""

    async def start(self) -> Any:
        yield scrapy.Request(self.start_url)

    def parse(self, response: Any) -> Any:
        if "/products/" in response.url:
            yield {"url": response.url, "title": response.css("h1::text").get()}
        for href in response.css("a::attr(href)").getall():
            if "/catalog/" in href or "/products/" in href:
                yield response.follow(href, self.parse)


def crawl(workdir: Path, site: DemoSite) -> tuple[Any, str]:
    spider = type("Site", (Site,), {"start_url": site.url})
    settings = {
        "RUN_RECORD": True, "CRAWL_PROFILE": "fast", "ROBOTSTXT_OBEY": False,
        "SQLITE_PATH": str(workdir / "crawler.sqlite"), "CSV_EXPORT_DIR": str(workdir / "out"),
    }  # fmt: skip
    return crawl_spider_class(workdir, spider, settings)


def test_a_crawl_fetches_every_page_once_and_finishes_its_job(
    fresh_demo_site: DemoSite, tmp_path: Path
) -> None:
    crawler, log = crawl(tmp_path, fresh_demo_site)
    assert crawler.stats.get_value("finish_reason") == "finished", log
    with sqlite3.connect(tmp_path / "crawler.sqlite") as db:
        states = dict(db.execute("SELECT state, COUNT(*) FROM frontier GROUP BY state"))
        jobs = db.execute("SELECT state, seeded_at IS NOT NULL FROM frontier_jobs").fetchall()
        (run_job,) = db.execute("SELECT job_id FROM runs").fetchone()
        items = db.execute("SELECT COUNT(*) FROM frontier_site").fetchone()[0]
    assert set(states) == {"done"} and states["done"] > 1000
    assert jobs == [("finished", 1)] and run_job == 1
    assert items == crawler.stats.get_value("item_scraped_count") > 990  # every item stored
    fetched = crawler.stats.get_value("downloader/response_count")
    assert fetched == states["done"]  # every request once, none twice

    crawler, log = crawl(tmp_path, fresh_demo_site)
    assert crawler.stats.get_value("finish_reason") == "finished", log
    assert "resuming" not in log  # a finished crawl starts afresh
    with sqlite3.connect(tmp_path / "crawler.sqlite") as db:
        assert db.execute("SELECT id, state FROM frontier_jobs").fetchall() == [
            (1, "finished"),
            (2, "finished"),
        ]


def test_a_request_queued_again_by_its_process_starts_its_attempts_over(
    conn: sqlite3.Connection,
) -> None:
    """A retry (the process queues the row again) is no sign of a page that kills processes."""
    job = sql.create_job(conn, "s", "k", "2026-12-01T00:00:00+00:00")
    with transaction(conn):
        sql.insert(conn, job, [new(1)])
    for _ in range(5):  # more retries than FRONTIER_MAX_ATTEMPTS
        with transaction(conn):
            rows, failed = sql.lease(conn, job, owner="me", limit=1, deadline=9e9, max_attempts=3)
            assert (len(rows), failed) == (1, 0)
            sql.requeue(conn, job, [new(1)])
    assert sql.counts(conn, job)["queued"] == 1


def test_a_bad_frontier_setting_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support import scrapy_here

    for setting, message in (
        ("FRONTIER=disk", "FRONTIER must be one of sqlite, redis, memory, not 'disk'"),
        ("FRONTIER_LEASE_SECONDS=1", "FRONTIER_LEASE_SECONDS must be at least 5"),
        ("FRONTIER_RESUME_MAX_AGE=soon", "FRONTIER_RESUME_MAX_AGE"),
    ):
        done = scrapy_here(capsys, "crawl", "pages", "-a", "url=http://127.0.0.1:9/",
                           "-s", setting, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: ") and message in line, line


def test_plain_spiders_with_other_arguments_are_other_crawls() -> None:
    from scrapy.settings import Settings

    from crawler.frontier.jobs import ARGUMENTS_SETTING, job_arguments

    plain = Site()
    one = Settings({ARGUMENTS_SETTING: {"category": "a"}})
    other = Settings({ARGUMENTS_SETTING: {"category": "b"}})
    assert job_arguments(plain, one) == {"category": "a"}
    assert job_key("s", job_arguments(plain, one)) != job_key("s", job_arguments(plain, other))


class StopsOnce(Site):
    """Stops its first crawl part-way as Ctrl-C would (finish reason ``shutdown``)."""

    name = "frontier_site"
    stop_after = 0

    def parse(self, response: Any) -> Any:
        yield from super().parse(response)
        if self.stop_after and self.crawler.stats.get_value("item_scraped_count", 0) >= 100:
            type(self).stop_after = 0
            from scrapy.utils.defer import deferred_from_coro

            deferred_from_coro(self.crawler.engine.close_spider_async(reason="shutdown"))


def test_a_resumed_run_is_not_judged_by_its_own_share_of_the_items(
    fresh_demo_site: DemoSite, tmp_path: Path
) -> None:
    """A run that finishes another run's crawl stores only the rest: fewer items than the last
    whole crawl is no failure then."""
    full, log = crawl(tmp_path, fresh_demo_site)
    assert full.stats.get_value("health/exit_status") == 0, log
    stopping = type("Site", (StopsOnce,), {"start_url": fresh_demo_site.url, "stop_after": 1})
    settings = {
        "RUN_RECORD": True, "CRAWL_PROFILE": "fast", "ROBOTSTXT_OBEY": False,
        "SQLITE_PATH": str(tmp_path / "crawler.sqlite"), "CSV_EXPORT_DIR": str(tmp_path / "out"),
        "CONCURRENT_REQUESTS": 4,
    }  # fmt: skip
    stopped, log = crawl_spider_class(tmp_path, stopping, settings)
    assert stopped.stats.get_value("finish_reason") == "shutdown", log
    rest, log = crawl_spider_class(tmp_path, stopping, settings)
    assert "Frontier: resuming the crawl of run 2" in log
    assert rest.stats.get_value("finish_reason") == "finished", log
    assert 0 < rest.stats.get_value("item_scraped_count") < 990
    assert rest.stats.get_value("health/exit_status") == 0, log
    with sqlite3.connect(tmp_path / "crawler.sqlite") as db:
        jobs = db.execute("SELECT id, state FROM frontier_jobs ORDER BY id").fetchall()
        items = db.execute("SELECT COUNT(*), COUNT(DISTINCT url) FROM frontier_site").fetchone()
    assert jobs == [(1, "finished"), (2, "finished")]
    assert items[0] == items[1] == full.stats.get_value("item_scraped_count")


def test_requests_taken_before_they_were_written_are_named_by_fingerprint(
    conn: sqlite3.Connection,
) -> None:
    """A process alone on its job serves its own new requests from memory: they are written
    leased, then counted and finished by fingerprint, like rows leased from the table."""
    job = sql.create_job(conn, "s", "k", "2026-12-01T00:00:00+00:00")
    with transaction(conn):
        sql.insert_leased(conn, job, [new(1), new(2), new(3)], "me", 9e9)
        sql.started(conn, job, ["fp1", "fp2"])
        sql.finish(conn, job, ["fp1"], [("fp2", "ValueError: boom")])
        sql.give_back(conn, job, ["fp3"])
    rows = conn.execute("SELECT fingerprint, state, attempts, error FROM frontier ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("fp1", "done", 1, None),
        ("fp2", "failed", 1, "ValueError: boom"),
        ("fp3", "queued", 0, None),
    ]


class PagesStopsOnce(PagesSpider):
    """A pages crawl of a URL file, stopped as Ctrl-C would after ``stop_after`` responses."""

    urls_file = ""
    stop_after = 0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(urls=self.urls_file, **kwargs)

    def parse(self, response: Any, seed: str) -> Any:
        item = super().parse(response, seed)
        if self.stop_after and self.crawler.stats.get_value("response_received_count", 0) >= (
            self.stop_after
        ):
            type(self).stop_after = 0
            from scrapy.utils.defer import deferred_from_coro

            deferred_from_coro(self.crawler.engine.close_spider_async(reason="shutdown"))
        return item


@pytest.mark.parametrize("frontier", ["sqlite", "redis"])
def test_a_resumed_unseeded_crawl_fetches_each_queued_seed_once(
    fresh_demo_site: DemoSite, tmp_path: Path, frontier: str, request: pytest.FixtureRequest
) -> None:
    """A crawl stopped before start() was read to its end reads it again when resumed: a seed
    that is already a row of the job (queued at the stop, or in flight then and queued again)
    is fetched once by the resumed run: it is not sent again while its row is in flight."""
    site = fresh_demo_site
    paths = [f"/products/{n}" for n in range(1, 41)]
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{site.url}{path[1:]}\n" for path in paths))
    spider = type("Pages", (PagesStopsOnce,), {"urls_file": str(urls), "stop_after": 10})
    settings = {
        "RUN_RECORD": True, "CRAWL_PROFILE": "fast", "ROBOTSTXT_OBEY": False,
        "SQLITE_PATH": str(tmp_path / "crawler.sqlite"), "CSV_EXPORT_DIR": str(tmp_path / "out"),
        "CONCURRENT_REQUESTS": 2, "FRONTIER": frontier,
    }  # fmt: skip
    if frontier == "redis":
        settings["REDIS_URL"] = request.getfixturevalue("redis_server").url
    stopped, log = crawl_spider_class(tmp_path, spider, settings)
    assert stopped.stats.get_value("finish_reason") == "shutdown", log
    before = {path: site.hits[path] for path in paths}
    assert 0 < sum(before.values()) < 40

    rest, log = crawl_spider_class(tmp_path, spider, settings)
    assert "start() is read again" in log, log  # stopped before start() was read to its end
    assert rest.stats.get_value("finish_reason") == "finished", log
    again = {path: site.hits[path] - before[path] for path in paths}
    twice = sorted(path for path, hits in again.items() if hits > 1)
    assert not twice, f"fetched twice by the resumed run: {twice}"
    assert all(before[path] + again[path] >= 1 for path in paths)  # every page fetched
    fetched = sum(again.values())
    assert rest.stats.get_value("scheduler/dequeued") == fetched
    assert rest.stats.get_value("downloader/response_count") == fetched
    with sqlite3.connect(tmp_path / "crawler.sqlite") as db:
        pages = db.execute("SELECT COUNT(*), COUNT(DISTINCT url) FROM pages").fetchone()
    assert pages == (40, 40)
