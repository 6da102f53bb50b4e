"""`scrapy schedule`: the schedule file, when jobs are due, --once, the daemon, locks and stops."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger

from crawler.demo.server import DemoSite
from crawler.durations import parse_duration
from crawler.scheduling.due import is_due, latest_fire
from crawler.scheduling.job import Job
from crawler.scheduling.runner import failure_reasons
from crawler.scheduling.schedulefile import ScheduleError, load_schedule
from crawler.scheduling.state import State
from tests.faultserver import FaultServer
from tests.support import ROOT, run_contained, scrapy_env

pytestmark = pytest.mark.timeout(120)


def schedule(*args: str, cwd: Path, timeout: float = 100) -> subprocess.CompletedProcess[str]:
    return run_contained(
        [sys.executable, "-m", "scrapy", "schedule", *args], cwd=cwd, env=scrapy_env(),
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def store_runs(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM runs ORDER BY id")]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the schedule file --------------------------------------------------------------------------
@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[jobs.a]\nspider = "pages"\nevery = 10m\n',
         "jobs.toml:3:11: invalid TOML: expected newline or end of document after a statement"),
        ("", "jobs.toml: no jobs: add a [jobs.NAME] table per job"),
        ('[jobs.a]\nspider = "pages"\n',
         "jobs.toml:1: job 'a': cron: give either cron = \"*/15 * * * *\" or every = \"15m\""),
        ('[jobs.a]\nspider = "pages"\ncron = "* * *"\n',
         "jobs.toml:3: job 'a': cron: invalid cron expression '* * *':"
         " Wrong number of fields; got 3, expected 5"),
        ('[jobs.a]\nspider = "pages"\nevery = "1h"\n\n[jobs.b]\nspider = "site"\nevry = "1h"\n',
         "jobs.toml:7: job 'b': evry: unknown key (allowed: arguments, cron, every, max_runtime,"
         " misfire_grace, settings, spider, timezone)"),
        ('[jobs.a]\nspider = "pages"\nevery = "10x"\n',
         "jobs.toml:3: job 'a': every: invalid duration '10x': expected a duration such as"
         " 90 (seconds), 30m, 1h30m, 6h, 2d or 1w"),
        ('[jobs.a]\nspider = "pages"\nevery = "1h"\ntimezone = "Mars/Olympus"\n',
         "jobs.toml:4: job 'a': timezone: unknown time zone 'Mars/Olympus'"),
        ('[jobs.a]\nspider = "pages"\nevery = "1h"\narguments = { url = { x = 1 } }\n',
         "jobs.toml:4: job 'a': arguments: url: values must be strings, numbers or booleans"
         " (or a list of them)"),
        ('[defaults]\nmax_runtime = "-1h"\n\n[jobs.a]\nspider = "pages"\nevery = "1h"\n',
         "jobs.toml:2: [defaults]: max_runtime: invalid duration '-1h':"
         " expected a duration such as 90 (seconds), 30m, 1h30m, 6h, 2d or 1w"),
        ('[jobs."../x"]\nspider = "pages"\nevery = "1h"\n',
         "jobs.toml:1: job '../x': job names may use letters, digits, '_', '.', '-'"),
    ],
)  # fmt: skip
def test_invalid_schedule_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "jobs.toml", text)
    with pytest.raises(ScheduleError) as caught:
        load_schedule(path)
    assert str(caught.value) == message.replace("jobs.toml", str(path), 1)


@pytest.mark.timeout(10)
def test_schedule_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path / "jobs.toml",
        '[defaults]\nsettings = { CRAWL_PROFILE = "fast", DOWNLOAD_DELAY = 0.5 }\n'
        'misfire_grace = "10m"\n\n'
        '[jobs.shop]\nspider = "products"\ncron = "0 3 * * *"\ntimezone = "Europe/Berlin"\n'
        'arguments = { start_url = "http://a.test/", max_products = 5 }\n'
        'settings = { CRAWL_PROFILE = "balanced", ROBOTSTXT_OBEY = false, X = [1, 2] }\n'
        'max_runtime = "1h30m"\n',
    )
    (job,) = load_schedule(path)
    assert (job.name, job.spider, job.cron, job.every) == ("shop", "products", "0 3 * * *", None)
    assert job.misfire_grace == timedelta(minutes=10)
    assert job.max_runtime == timedelta(hours=1, minutes=30)
    command = job.command({"SQLITE_PATH": "db.sqlite"})
    assert command[1:5] == ["-m", "scrapy", "crawl", "products"]
    assert " ".join(command[5:]) == (
        "-a start_url=http://a.test/ -a max_products=5 -s SQLITE_PATH=db.sqlite"
        " -s CRAWL_PROFILE=balanced -s DOWNLOAD_DELAY=0.5 -s ROBOTSTXT_OBEY=false -s X=1,2"
        " -s SCHEDULE_JOB=shop"
    )


@pytest.mark.timeout(10)
def test_durations() -> None:
    assert parse_duration("90s") == parse_duration("1.5m") == parse_duration(90)
    assert parse_duration("1d2h") == timedelta(hours=26)
    # one syntax with -a min_age: weeks, and a bare number is seconds
    assert parse_duration("1w") == timedelta(days=7)
    assert parse_duration("10") == timedelta(seconds=10)
    for bad in ("", "m", "1h x", "0s", "5y", True):
        with pytest.raises(ValueError):
            parse_duration(bad)  # type: ignore[arg-type]


# --- when a job is due (--once) -----------------------------------------------------------------
def at(hour: int, minute: int, second: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("state", "now", "grace", "due"),
    [
        (State(), at(3, 0, 30), None, True),  # first look, fire time 30 s ago
        (State(), at(3, 5), None, False),  # first look, fire time long gone: wait for the next
        (State(), at(3, 5), "10m", True),  # ... unless within misfire_grace
        (State(last_check=at(2, 45)), at(3, 0, 1), None, True),
        (State(last_check=at(3, 0, 1)), at(3, 15), None, False),  # already looked at
        (State(last_check=at(2, 45)), at(9, 0), None, True),  # missed while down: catch up once
        (State(last_check=at(2, 45)), at(9, 0), "1h", False),  # ... not beyond misfire_grace
        (State(last_check=at(2, 45, day=7)), at(9, 0), None, True),  # days missed: one run
        (State(last_check=at(2, 0), last_start=at(3, 0, 1)), at(3, 30), None, False),
    ],
)  # fmt: skip
def test_cron_job_due(state: State, now: datetime, grace: str | None, due: bool) -> None:
    job = Job("j", "pages", UTC, cron="0 3 * * *", misfire_grace=grace and parse_duration(grace))
    assert is_due(job, state, now).due is due


@pytest.mark.timeout(10)
def test_interval_job_due() -> None:
    job = Job("j", "pages", UTC, every=timedelta(hours=1))
    assert is_due(job, State(), at(3, 0)).due
    assert is_due(job, State(last_start=at(2, 1)), at(3, 0)).due  # a minute early is fine
    assert not is_due(job, State(last_start=at(2, 2)), at(3, 0)).due
    assert latest_fire(CronTrigger.from_crontab("*/5 * * * *", timezone=UTC), at(12, 7)) == at(
        12, 5
    )


# --- --once, locks, the daemon (real processes) ---------------------------------------------------
def shop_schedule(tmp_path: Path, url: str, extra: str = "") -> Path:
    return write(
        tmp_path / "jobs.toml",
        f'[jobs.shop]\nspider = "products"\nevery = "1h"\n'
        f'arguments = {{ start_url = "{url}", max_products = 3 }}\n'
        f'settings = {{ CRAWL_PROFILE = "fast" }}\n{extra}',
    )


def test_once_runs_a_due_job_then_waits_for_the_interval(
    demo_site: DemoSite, tmp_path: Path
) -> None:
    jobs, db = shop_schedule(tmp_path, demo_site.url), tmp_path / "store.sqlite"
    options = ["--once", "-s", f"SQLITE_PATH={db}", "-s", "SCHEDULE_LOG_DIR=logs"]
    first = schedule(str(jobs), *options, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "job shop: due (never ran)" in first.stderr
    (log,) = (tmp_path / "logs" / "shop").glob("*.log")
    assert "Spider closed (finished)" in log.read_text()
    (run,) = store_runs(db)
    assert (run["spider"], run["items"], run["exit_status"]) == ("products", 3, 0)
    assert json.loads(run["settings"])["SCHEDULE_JOB"] == "shop"
    second = schedule(str(jobs), *options, cwd=tmp_path)
    assert second.returncode == 0
    assert "job shop: not due (next run at " in second.stderr
    assert len(store_runs(db)) == 1 and len(list(log.parent.glob("*.log"))) == 1


def test_once_exits_1_when_a_run_fails(refused_url: str, tmp_path: Path) -> None:
    jobs = write(
        tmp_path / "jobs.toml",
        f'[jobs.down]\nspider = "pages"\ncron = "* * * * *"\n'
        f'arguments = {{ url = "{refused_url}" }}\nsettings = {{ CRAWL_PROFILE = "fast" }}\n',
    )
    done = schedule(
        str(jobs), "--once", "-s", f"SQLITE_PATH={tmp_path / 'db.sqlite'}", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "job down: failed, exit status 1" in done.stderr
    assert "1 run(s): 0 ok, 1 failed (down)" in done.stderr
    (run,) = store_runs(tmp_path / "db.sqlite")
    assert run["failure"].startswith("errors: 1 of 1 requests failed")


def test_the_line_of_a_failed_run_says_why(tmp_path: Path) -> None:
    with FaultServer() as server:  # every page answers 500
        pages = json.dumps([server.url(f"/status?code=500&key={n}") for n in range(3)])
        jobs = write(
            tmp_path / "jobs.toml",
            f'[jobs.broken]\nspider = "pages"\ncron = "* * * * *"\n'
            f'arguments = {{ url = {pages} }}\nsettings = {{ CRAWL_PROFILE = "fast" }}\n',
        )
        db = tmp_path / "db.sqlite"
        done = schedule(str(jobs), "--once", "-s", f"SQLITE_PATH={db}", cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    (run,) = store_runs(db)
    assert run["failure"].startswith("errors: 3 of 3 requests failed (100%")
    (line,) = [line for line in done.stderr.splitlines() if "job broken: failed" in line]
    assert line.endswith(f"; why: {run['failure']}")  # the runs row's words, in the job's line
    assert "job broken: failed, exit status 1, " in line and ", log " in line


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("log", "why"),
    [
        ("x [crawler.extensions.health] ERROR: run failed: errors: 3 of 3\n"
         "x [crawler.extensions.health] ERROR: run failed: quality: price coverage 0% vs 100%\n",
         "errors: 3 of 3; quality: price coverage 0% vs 100%"),
        # a WORKERS run: its parent's verdict on the whole run, not a worker's on its share
        ("x ERROR: run failed: errors: 2 of 2\nworkers: run failed: items: 1 items, under 50%\n"
         "x ERROR: run failed: errors: 2 of 2\n", "items: 1 items, under 50%"),
        ("error: HEALTH_MAX_ERROR_RATIO must be a number between 0 and 1, not 'x'\n",
         "HEALTH_MAX_ERROR_RATIO must be a number between 0 and 1, not 'x'"),
        ("".join(f"x ERROR: run failed: r{n}\n" for n in range(7)),
         "r0; r1; r2; r3; r4; and 2 more (see the log)"),
        ("x INFO: Spider closed (shutdown)\n", None),
    ],
)  # fmt: skip
def test_failure_reasons_from_the_log(tmp_path: Path, log: str, why: str | None) -> None:
    assert failure_reasons(write(tmp_path / "run.log", log)) == why
    assert failure_reasons(tmp_path / "gone.log") is None


def test_overlap_is_refused_and_a_crashed_holder_leaves_no_lock(
    demo_site: DemoSite, tmp_path: Path
) -> None:
    jobs, db = shop_schedule(tmp_path, demo_site.url), tmp_path / "store.sqlite"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from crawler.scheduling.lock import JobLock;"
         " assert JobLock(Path(sys.argv[1])).acquire(); print('locked', flush=True);"
         " time.sleep(100)", str(tmp_path / "logs" / "shop" / "run.lock")],
        cwd=ROOT, env=scrapy_env(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        options = ["--once", "-s", f"SQLITE_PATH={db}", "-s", "SCHEDULE_LOG_DIR=logs"]
        refused = schedule(str(jobs), *options, cwd=tmp_path)
        assert refused.returncode == 0, refused.stderr[-3000:]
        message = "job shop: not started: its previous run is still running (1 refused so far)"
        assert message in refused.stderr
        assert store_runs(db) == [] and not list((tmp_path / "logs" / "shop").glob("*.log"))
    finally:
        holder.kill()  # SIGKILL: no chance to clean up; the kernel drops the lock
        holder.wait(timeout=10)
    after = schedule(str(jobs), *options, cwd=tmp_path)
    assert after.returncode == 0, after.stderr[-3000:]
    assert [run["exit_status"] for run in store_runs(db)] == [0]
    state = json.loads((tmp_path / "logs" / "shop" / "state.json").read_text())
    assert (state["refused"], state["last_exit"]) == (1, 0)


def test_list_shows_jobs_and_next_runs(tmp_path: Path) -> None:
    jobs = shop_schedule(tmp_path, "http://a.test/", 'misfire_grace = "5m"\n')
    jobs.write_text(
        jobs.read_text() + '\n[jobs.nightly]\nspider = "site"\ncron = "0 3 * * *"\n'
        'timezone = "UTC"\narguments = { start_url = "http://a.test/" }\n'
    )
    done = schedule(str(jobs), "--list", "-s", "SCHEDULE_LOG_DIR=logs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    header, shop, nightly = done.stdout.splitlines()
    assert header.split() == ["job", "spider", "when", "next", "run"]
    assert shop.split()[:4] == ["shop", "products", "every", "1h"]
    assert nightly.split()[:5] == ["nightly", "site", "cron", "0", "3"]
    assert nightly.endswith(" 03:00:00 UTC")
    assert not (tmp_path / "logs").exists()


def test_bad_file_and_unknown_spider_exit_2(tmp_path: Path) -> None:
    jobs = write(tmp_path / "jobs.toml", '[jobs.a]\nspider = "nope"\nevery = "1h"\n')
    done = schedule(str(jobs), "--once", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {jobs}:2: job 'a': spider: no spider named 'nope' (see `scrapy list`)"
    )
    write(jobs, '[jobs.a]\nspider = "pages"\nevery = "1h"\narguments = { url = "ftp://x/" }\n')
    done = schedule(str(jobs), "--once", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {jobs}:4: job 'a': arguments: invalid argument url='ftp://x/':"
        " scheme 'ftp' not allowed (only http and https)"
    )


@pytest.fixture
def hanging_server() -> Iterator[tuple[str, threading.Event]]:
    """A server that accepts connections and never answers; the event: one was accepted."""
    connected, stop, held = threading.Event(), threading.Event(), []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            connected.set()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hang", connected
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in [*held, server]:
            conn.close()


def wait_for(path: Path, text: str, count: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = path.read_text(errors="replace") if path.exists() else ""
        if output.count(text) >= count:
            return output
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not seen {count} times in {timeout} s:\n{output[-3000:]}")


@pytest.mark.timeout(150)
def test_daemon_refuses_overlaps_and_stops_cleanly(
    fresh_demo_site: DemoSite, hanging_server: tuple[str, threading.Event], tmp_path: Path
) -> None:
    silent_url, connected = hanging_server
    # Both jobs fire every second and run far longer: "slow" one request per second over the
    # 1,000-product shop (it stops at once on SIGINT), "stuck" on a server that never answers.
    jobs = write(
        tmp_path / "jobs.toml",
        f'[defaults]\nsettings = {{ CRAWL_PROFILE = "fast", ROBOTSTXT_OBEY = false }}\n\n'
        f'[jobs.slow]\nspider = "products"\nevery = "1s"\n'
        f'arguments = {{ start_url = "{fresh_demo_site.url}" }}\n'
        f"settings = {{ CONCURRENT_REQUESTS = 1, DOWNLOAD_DELAY = 1 }}\n\n"
        f'[jobs.stuck]\nspider = "pages"\nevery = "1s"\narguments = {{ url = "{silent_url}" }}\n'
        f"settings = {{ DOWNLOAD_TIMEOUT = 300 }}\n",
    )
    db, output = tmp_path / "store.sqlite", tmp_path / "daemon.log"
    command = [sys.executable, "-m", "scrapy", "schedule", str(jobs), "-s", f"SQLITE_PATH={db}",
               "-s", "SCHEDULE_LOG_DIR=logs", "-s", "SCHEDULE_STOP_TIMEOUT=10"]  # fmt: skip
    with output.open("w") as sink:
        daemon = subprocess.Popen(command, cwd=tmp_path, env=scrapy_env(), stderr=sink)
    try:
        for job in ("slow", "stuck"):
            wait_for(output, f"job {job}: not started: its previous run is still running", 1, 90)
        deadline = time.monotonic() + 60
        while sum(fresh_demo_site.hits.values()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # slow is crawling: past its start, so SIGINT closes the spider
        assert connected.wait(60)  # stuck's request is in flight: SIGINT cannot stop it
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    text = output.read_text()
    assert "asked 2 running crawl(s) to stop" in text
    assert "job slow: stopped, exit status 1" in text
    assert "not stopped 10 s after SIGINT" in text  # stuck: killed after SCHEDULE_STOP_TIMEOUT
    assert text.rstrip().endswith("scheduler stopped")
    for job in ("slow", "stuck"):
        assert len(list((tmp_path / "logs" / job).glob("*.log"))) == 1  # never two at once
    runs = {json.loads(run["settings"])["SCHEDULE_JOB"]: run for run in store_runs(db)}
    assert (runs["slow"]["finish_reason"], runs["slow"]["exit_status"]) == ("shutdown", 1)
    assert runs["stuck"]["finished_at"] is None  # killed: no chance to finish its row


@pytest.mark.timeout(240)
def test_a_field_broken_on_the_site_fails_the_next_scheduled_run_naming_it(
    tmp_path: Path,
) -> None:
    """The issue's done-when: the shop's markup changes for one field between two scheduled
    runs; the next run fails and the scheduler's line names the field and the figures."""
    with DemoSite(slow_seconds=0.3) as site:
        jobs = write(
            tmp_path / "jobs.toml",
            f'[jobs.shop]\nspider = "products"\nevery = "1s"\n'
            f'arguments = {{ start_url = "{site.url}", max_products = 30 }}\n'
            f'settings = {{ CRAWL_PROFILE = "fast" }}\n',
        )
        db = tmp_path / "store.sqlite"
        good = schedule(str(jobs), "--once", "-s", f"SQLITE_PATH={db}", cwd=tmp_path)
        assert good.returncode == 0, good.stderr[-3000:]
        time.sleep(1.2)  # the job is due again
        site.broken_fields = frozenset({"rating"})  # the shop's redesign
        broken = schedule(str(jobs), "--once", "-s", f"SQLITE_PATH={db}", cwd=tmp_path)
    assert broken.returncode == 1, broken.stderr[-3000:]
    first, last = store_runs(db)
    assert (first["exit_status"], last["exit_status"]) == (0, 1)
    assert last["finish_reason"] == "quality_failed"
    (line,) = [line for line in broken.stderr.splitlines() if "job shop: failed" in line]
    assert line.endswith(
        "; why: quality: rating coverage 0% vs 100% median of 1 run"
        " (QUALITY_MAX_COVERAGE_DROP is 20 points)"
    ), line
