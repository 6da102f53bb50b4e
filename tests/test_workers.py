"""``-s WORKERS=N``: one run crawled by N processes on one frontier (``crawler.workers``), and
the per-host politeness each worker gets (``crawler.addon``)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from crawler.demo.server import DemoSite
from crawler.extensions.alerts import AlertConfig
from crawler.report import ReportConfig
from crawler.safety.secrets import Redactor
from crawler.stats import RunCounts
from crawler.storage import Store, StoreConfig
from crawler.workers import AfterRun, after_run, merge_stats
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


def test_merge_stats_sums_the_figures_of_dict_stats() -> None:
    """Dicts of numbers (latency buckets, hosts, fetch kinds, field coverage) are summed key by
    key, nested; lists joined; other values the first worker's; ``_LARGEST`` keys the largest."""
    first = {
        "metrics/latency_ms": {"50": 3, "100": 1},
        "metrics/hosts": {"a.test": {"pages": 2, "errors": 0, "bytes": 100}},
        "metrics/fetch_kinds": {"http": 4, "browser": 0},
        "coverage/tables": {"products": {"items": 3, "fields": {"sku": 3, "rating": 1}}},
        "item_scraped_count": 3,
        "memusage/max": 10,
        "csv/paths": ["a-w0.csv"],
        "finish_reason": "finished",
        "odd": {"text": "first", "n": 1},
    }
    second = {
        "metrics/latency_ms": {"50": 2, "inf": 1},
        "metrics/hosts": {
            "a.test": {"pages": 1, "errors": 1, "bytes": 50},
            "b.test": {"pages": 5, "errors": 0, "bytes": 7},
        },
        "metrics/fetch_kinds": {"http": 1, "browser": 2},
        "coverage/tables": {
            "products": {"items": 2, "fields": {"sku": 2, "rating": 2}},
            "pages": {"items": 1, "fields": {"url": 1}},
        },
        "item_scraped_count": 2,
        "memusage/max": 30,
        "csv/paths": ["a-w1.csv"],
        "finish_reason": "shutdown",
        "odd": {"text": "second", "n": 2},
    }
    before = json.dumps([first, second], sort_keys=True)
    merged = merge_stats([first, second])
    assert merged["metrics/latency_ms"] == {"50": 5, "100": 1, "inf": 1}
    assert merged["metrics/hosts"] == {
        "a.test": {"pages": 3, "errors": 1, "bytes": 150},
        "b.test": {"pages": 5, "errors": 0, "bytes": 7},
    }
    assert merged["metrics/fetch_kinds"] == {"http": 5, "browser": 2}
    assert merged["coverage/tables"] == {
        "products": {"items": 5, "fields": {"sku": 5, "rating": 3}},
        "pages": {"items": 1, "fields": {"url": 1}},
    }
    assert (merged["item_scraped_count"], merged["memusage/max"]) == (5, 30)
    assert merged["csv/paths"] == ["a-w0.csv", "a-w1.csv"]
    assert merged["finish_reason"] == "finished"
    assert merged["odd"] == {"text": "first", "n": 3}
    assert json.dumps([first, second], sort_keys=True) == before  # the workers' stats untouched


# Writes what the alert command was given (stdin JSON, environment) to the file in argv[1].
RECORDER = """\
import json, os, sys
summary = json.loads(sys.stdin.buffer.read().decode("utf-8"))
env = {k: os.environ.get(k) for k in ("CRAWL_RUN_ID", "CRAWL_EXIT_STATUS")}
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump({"summary": summary, "env": env}, out)
"""
SUMMARY_KEYS = {
    "run_id",
    "spider",
    "job",
    "arguments",
    "started",
    "finished",
    "finish_reason",
    "exit_status",
    "failures",
    "checks",
    "counts",
    "store",
    "report",
    "snapshots",
}  # fmt: skip  (crawler.extensions.alerts.run_summary, a single process's)


def recorder_command(tmp_path: Path) -> tuple[str, Path]:
    script = tmp_path / "record.py"
    script.write_text(RECORDER, encoding="utf-8")
    out = tmp_path / "alert.json"
    return shlex.join([sys.executable, str(script), str(out)]), out


def test_the_supervisor_sums_the_figures_writes_the_report_and_calls_the_hooks(
    tmp_path: Path,
) -> None:
    """WORKERS=2 with a field floor the broken shop fails: the run row's figures are the sum of
    the workers' (dict stats too), the supervisor writes the report and calls the alert command
    after the row is final, with the same summary as a single process gives."""
    line, out = recorder_command(tmp_path)
    reports = tmp_path / "reports"
    with DemoSite(page_delay=0.05, broken_fields={"description"}) as shop:
        result = run_crawl_in(
            tmp_path, "products", "-a", f"start_url={shop.url}", "-a", "max_products=30",
            "-s", "WORKERS=2", "-s", "FRONTIER_LEASE_BATCH=2",
            "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=4",
            "-s", 'QUALITY_MIN_COVERAGE={"description": 0.5}',
            "-s", "REPORT_AT_CLOSE=True", "-s", f"REPORT_DIR={reports}",
            "-s", f"ALERT_COMMAND={line}", subprocess=True,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    (run,) = result.rows("SELECT * FROM runs")
    assert (run["finish_reason"], run["exit_status"]) == ("quality_failed", 1)
    floor = "quality: description coverage 0% vs its floor of 50% (QUALITY_MIN_COVERAGE)"
    assert f"workers: run failed: {floor}" in result.stderr

    # 1. the dict stats are the sums of the workers'
    stats = json.loads(run["stats"])
    workers = [json.loads(w["stats"]) for w in result.rows("SELECT stats FROM run_workers")]
    assert len(workers) == 2
    assert all(w["metrics/fetch_kinds"]["http"] > 0 for w in workers), workers
    for key in ("metrics/latency_ms", "metrics/fetch_kinds"):
        names = {name for w in workers for name in w[key]}
        assert stats[key] == {n: sum(w[key].get(n, 0) for w in workers) for n in names}, key
    (host,) = stats["metrics/hosts"]
    for figure in ("pages", "errors", "bytes"):
        total = sum(w["metrics/hosts"][host][figure] for w in workers)
        assert stats["metrics/hosts"][host][figure] == total, figure
    products = stats["coverage/tables"]["products"]
    assert (
        products["items"]
        == run["items"]
        == sum(w["coverage/tables"]["products"]["items"] for w in workers)
    )
    assert products["fields"]["description"] == 0
    assert products["fields"]["sku"] == run["items"]

    # 2. the report, written by the supervisor after the row is final
    report = reports / f"run-{run['id']}.html"
    assert f"  report: {report}" in result.stderr.splitlines(), result.stderr[-3000:]
    assert report.is_file() and report.stat().st_size > 0

    # 3. the alert command got the run's summary (ALERT_ON=failure: a failed run)
    given = json.loads(out.read_text(encoding="utf-8"))
    summary = given["summary"]
    assert set(summary) == SUMMARY_KEYS
    assert given["env"] == {"CRAWL_RUN_ID": str(run["id"]), "CRAWL_EXIT_STATUS": "1"}
    assert (summary["run_id"], summary["spider"], summary["job"]) == (run["id"], "products", None)
    assert (summary["finish_reason"], summary["exit_status"]) == ("quality_failed", 1)
    # 4. the quality failure is in the summary, and its failed check
    assert summary["failures"] == [floor]
    assert [(c["subject"], c["passed"]) for c in summary["checks"]] == [
        ("products.description", False)
    ]
    assert summary["counts"] == {
        name: run[name] for name in ("pages", "items", "rejects", "duplicates", "errors")
    }
    assert summary["arguments"] == json.loads(run["arguments"])
    assert summary["store"] == str(result.db)
    assert summary["report"] == str(report)
    assert summary["started"] == run["started_at"] and summary["finished"] == run["finished_at"]


def finished_run(tmp_path: Path, exit_status: int) -> tuple[Store, int]:
    """A store with one final run row (a real SQLite file)."""
    store = Store(StoreConfig(tmp_path / "crawler.sqlite"))
    store.open()
    run_id = store.start_run("site", arguments={"depth": 2}, profile=None, settings={})
    store.finish_run(
        run_id, reason="finished", counts=RunCounts(3, 2, 0, 0, 0), exit_status=exit_status,
        stats={}, failure="errors: many" if exit_status else None,
    )  # fmt: skip
    return store, run_id


def test_alert_on_is_honoured_after_a_workers_run(tmp_path: Path) -> None:
    """ALERT_ON=failure skips a run that did well; always calls for it (the summary of the row)."""
    line, out = recorder_command(tmp_path)
    store, run_id = finished_run(tmp_path, 0)
    try:
        on_failure = AfterRun(alerts=AlertConfig(command=tuple(shlex.split(line))))
        after_run(on_failure, store, run_id, (), Redactor(()))
        assert not out.exists()
        always = dataclasses.replace(
            on_failure, alerts=AlertConfig(tuple(shlex.split(line)), on="always")
        )
        after_run(always, store, run_id, (), Redactor(()))
    finally:
        store.close()
    given = json.loads(out.read_text(encoding="utf-8"))
    assert given["env"] == {"CRAWL_RUN_ID": str(run_id), "CRAWL_EXIT_STATUS": "0"}
    summary = given["summary"]
    assert set(summary) == SUMMARY_KEYS
    assert (summary["exit_status"], summary["failures"], summary["checks"]) == (0, [], [])
    assert summary["counts"] == {"pages": 3, "items": 2, "rejects": 0, "duplicates": 0, "errors": 0}
    assert (summary["arguments"], summary["report"]) == ({"depth": 2}, None)


def test_a_report_that_cannot_be_written_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, run_id = finished_run(tmp_path, 1)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    config = ReportConfig(db=str(store.path), report_dir=str(blocker / "reports"))
    try:
        after_run(AfterRun(report=config), store, run_id, ("errors: many",), Redactor(()))
    finally:
        store.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"workers: HTML report of run {run_id} not written: "
    ), lines
