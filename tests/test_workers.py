"""``-s WORKERS=N``: one run crawled by N processes on one frontier (``crawler.workers``), and
the per-host politeness each worker gets (``crawler.addon``)."""

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

from crawler.demo.server import DemoSite
from tests.support import ROOT, run_contained, run_crawl_in, scrapy_env, scrapy_here

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(200)


@pytest.fixture
def distant_site() -> Iterator[DemoSite]:
    """The demo shop 50 ms away: a crawl lasts long enough for both workers to start."""
    with DemoSite(page_delay=0.05) as site:
        yield site


def test_two_workers_crawl_one_run(tmp_path: Path, distant_site: DemoSite) -> None:
    base = distant_site.url
    result = run_crawl_in(
        tmp_path, "site", "-a", f"start_url={base}", "-a", "depth=2",
        "-s", "WORKERS=2", "-s", "FRONTIER_LEASE_BATCH=2",
        "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=4", subprocess=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = result.rows("SELECT * FROM runs")
    assert (run["finish_reason"], run["exit_status"]) == ("finished", 0)
    assert run["job_id"] is not None
    workers = result.rows("SELECT * FROM run_workers ORDER BY worker")
    assert [w["worker"] for w in workers] == [0, 1]
    assert all(w["run_id"] == run["id"] and w["finish_reason"] == "finished" for w in workers)
    assert all(w["pages"] > 0 for w in workers), [(w["worker"], w["pages"]) for w in workers]
    assert run["pages"] == sum(w["pages"] for w in workers)
    assert run["items"] == sum(w["items"] for w in workers)
    urls = [r["url"] for r in result.rows("SELECT url FROM pages")]
    assert len(urls) == len(set(urls)) == run["items"]
    # one CSV file per worker, listed by the parent
    files = result.csv_files()
    assert len(files) == 2
    assert all(f"workers: CSV: {path}" in result.stderr for path in files), result.stderr
    logs = sorted((tmp_path / "data" / "logs" / "workers").glob("*.log"))
    assert [p.name for p in logs] == [f"run-{run['id']}-worker-{k}.log" for k in (0, 1)]


def test_the_items_of_all_workers_are_compared_with_the_last_run(
    tmp_path: Path, distant_site: DemoSite
) -> None:
    """Each worker has only its share of the items: the sum is what meets the last run's."""
    args = ("-a", f"start_url={distant_site.url}", "-a", "depth=2")
    # every page is an item each time (no 304s), and 99% of the last run's items are wanted
    strict = ("-s", "HEALTH_MIN_ITEM_RATIO=0.99", "-s", "CONDITIONAL_ENABLED=False")
    before = run_crawl_in(tmp_path, "site", *args, *strict)
    assert before.returncode == 0, before.stderr[-3000:]
    result = run_crawl_in(
        tmp_path, "site", *args, *strict, "-s", "WORKERS=2", "-s", "FRONTIER_LEASE_BATCH=2",
        "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=4", subprocess=True,
    )  # fmt: skip
    workers = result.rows("SELECT worker, items FROM run_workers WHERE run_id = 2")
    assert all(w["items"] >= 3 for w in workers), [tuple(w) for w in workers]  # both under 99%
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = result.rows("SELECT exit_status, failure, items FROM runs WHERE id = 2")
    assert (run["exit_status"], run["failure"]) == (0, None)


SPIDER_FILE = """
import scrapy

class Links(scrapy.Spider):
    name = "links"
    start_urls = [{url!r}]

    def parse(self, response):
        yield {{"url": response.url, "title": response.css("title::text").get()}}
        yield from response.follow_all(css="a")
"""


def test_runspider_with_two_workers(tmp_path: Path, fresh_demo_site: DemoSite) -> None:
    spider = tmp_path / "links.py"
    spider.write_text(SPIDER_FILE.format(url=fresh_demo_site.url), encoding="utf-8")
    command = [
        sys.executable, "-m", "scrapy", "runspider", str(spider), "-s", "WORKERS=2",
        "-s", f"SQLITE_PATH={tmp_path / 'crawler.sqlite'}", "-s", "CRAWL_PROFILE=fast",
        "-s", f"CSV_EXPORT_DIR={tmp_path / 'out'}", "-s", "DEPTH_LIMIT=2",
    ]  # fmt: skip
    done = run_contained(command, cwd=tmp_path, env=scrapy_env(), timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    with sqlite3.connect(tmp_path / "crawler.sqlite") as conn:
        runs = conn.execute("SELECT spider, finish_reason, job_id FROM runs").fetchall()
        workers = conn.execute("SELECT worker, finish_reason FROM run_workers").fetchall()
    assert [run[:2] for run in runs] == [("links", "finished")] and runs[0][2] is not None
    assert sorted(workers) == [(0, "finished"), (1, "finished")]


def start_workers(workdir: Path, site: DemoSite) -> subprocess.Popen[str]:
    """``scrapy crawl site -s WORKERS=2`` of the whole demo shop, in the background."""
    command = [
        sys.executable, "-m", "scrapy", "crawl", "site", "-a", f"start_url={site.url}",
        "-a", "depth=5", "-s", f"SQLITE_PATH={workdir / 'crawler.sqlite'}",
        "-s", f"CSV_EXPORT_DIR={workdir / 'out'}", "-s", "CRAWL_PROFILE=fast", "-s", "WORKERS=2",
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=workdir, env=scrapy_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip


def wait_for_pids(db: Path, parent: subprocess.Popen[str]) -> list[int]:
    """The workers' pids, once both run and the frontier has done some requests."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and parent.poll() is None:
        with contextlib.suppress(sqlite3.Error), sqlite3.connect(db) as conn:
            pids = [r[0] for r in conn.execute("SELECT pid FROM run_workers ORDER BY worker")]
            done = conn.execute("SELECT count(*) FROM frontier WHERE state = 'done'").fetchone()
            if len(pids) == 2 and done[0] > 0:
                return pids
        time.sleep(0.1)
    raise AssertionError(f"the workers did not start: {parent.poll()}")


def finish(parent: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = parent.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
    return parent.returncode, err


def test_a_killed_worker_is_restarted(tmp_path: Path, fresh_demo_site: DemoSite) -> None:
    parent = start_workers(tmp_path, fresh_demo_site)
    pids = wait_for_pids(tmp_path / "crawler.sqlite", parent)
    os.kill(pids[1], signal.SIGKILL)
    status, err = finish(parent)
    assert f"workers: worker 1 (pid {pids[1]}) killed by SIGKILL: restarting it (1 of 3)" in err
    assert status == 0, err[-3000:]
    with sqlite3.connect(tmp_path / "crawler.sqlite") as conn:
        run = conn.execute("SELECT finish_reason, exit_status, items FROM runs").fetchall()
        workers = conn.execute("SELECT pid, finish_reason FROM run_workers ORDER BY worker")
        urls = [r[0] for r in conn.execute("SELECT url FROM pages")]
    # the store holds every page once; the run's count carries the killed process's figures
    # from its last heartbeat (up to RUN_HEARTBEAT_SECONDS of its items may be uncounted)
    assert [r[:2] for r in run] == [("finished", 0)]
    assert 0 < run[0][2] <= len(urls)
    assert [w[1] for w in workers] == ["finished", "finished"]
    assert len(urls) == len(set(urls))


def test_ctrl_c_stops_every_worker(tmp_path: Path, fresh_demo_site: DemoSite) -> None:
    parent = start_workers(tmp_path, fresh_demo_site)
    pids = wait_for_pids(tmp_path / "crawler.sqlite", parent)
    parent.send_signal(signal.SIGINT)
    status, err = finish(parent)
    assert "workers: stopping the workers cleanly (Ctrl-C again to kill them)" in err
    assert status == 1, err[-3000:]
    with sqlite3.connect(tmp_path / "crawler.sqlite") as conn:
        runs = conn.execute("SELECT finish_reason, exit_status FROM runs").fetchall()
        reasons = [r[0] for r in conn.execute("SELECT finish_reason FROM run_workers")]
    assert runs == [("shutdown", 1)]
    assert reasons == ["shutdown", "shutdown"]
    for pid in pids:  # both stopped: nothing outlives the parent
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize("value", ["zero", "0", "-3", "2.5"])
def test_a_bad_workers_value_is_one_line(capsys: pytest.CaptureFixture[str], value: str) -> None:
    done = scrapy_here(capsys, "crawl", "site", "-a", "start_url=http://127.0.0.1:9/",
                       "-s", f"WORKERS={value}", cwd=ROOT)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: WORKERS must be a number of processes (1 or more) or 'auto', not {value!r}"
    ]


@pytest.mark.parametrize(
    ("args", "name", "expected"),
    [
        ([], "CONCURRENT_REQUESTS_PER_DOMAIN", 1),  # polite: 2 per host, shared by 2
        (["-s", "CONCURRENT_REQUESTS_PER_DOMAIN=5"], "CONCURRENT_REQUESTS_PER_DOMAIN", 3),
        (["-s", "CONCURRENT_REQUESTS_PER_IP=3"], "CONCURRENT_REQUESTS_PER_IP", 2),
        (["-s", "CONCURRENT_REQUESTS_PER_IP=0"], "CONCURRENT_REQUESTS_PER_IP", 0),  # 0: off
        ([], "DOWNLOAD_DELAY", 2.0),  # polite: 1 s, each worker waits twice as long
        ([], "AUTOTHROTTLE_TARGET_CONCURRENCY", 0.5),
        (["-s", "CRAWL_PROFILE=fast"], "CONCURRENT_REQUESTS_PER_DOMAIN", 50),
        (["-s", "CRAWL_PROFILE=fast"], "DOWNLOAD_DELAY", 0.0),
    ],
)
def test_each_of_two_workers_gets_half_a_hosts_politeness(
    capsys: pytest.CaptureFixture[str], args: list[str], name: str, expected: Any
) -> None:
    done = scrapy_here(capsys, "settings", "--get", name, "-s", "WORKER_COUNT=2", *args, cwd=ROOT)
    assert json.loads(done.stdout) == expected, done.stderr


def test_one_worker_keeps_the_hosts_politeness(capsys: pytest.CaptureFixture[str]) -> None:
    done = scrapy_here(capsys, "settings", "--get", "DOWNLOAD_DELAY", cwd=ROOT)
    assert json.loads(done.stdout) == 1.0


def test_a_worker_left_without_pages_does_not_fail_the_run(
    tmp_path: Path, fresh_demo_site: DemoSite
) -> None:
    """One URL, two workers: one of them fetches nothing. The run as a whole fetched its page,
    so it finished well; a run that fetched nothing at all still fails (judged on the sum)."""
    result = run_crawl_in(
        tmp_path, "pages", "-a", f"url={fresh_demo_site.url}about", "-s", "WORKERS=2",
        subprocess=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = result.rows("SELECT finish_reason, exit_status, items FROM runs")
    assert tuple(run) == ("finished", 0, 1)
    pages = sorted(r["pages"] for r in result.rows("SELECT pages FROM run_workers"))
    assert pages[0] == 0 < pages[1]  # one worker fetched it (and robots.txt), the other nothing
