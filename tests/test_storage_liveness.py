"""Runs whose processes are gone: liveness of run_workers rows, reaping, and a real `kill -9`.

The component tests build rows in a real SQLite store with real pids (a child that exited, this
process). The crawl tests kill a `scrapy crawl` subprocess with SIGKILL and check what the next
commands make of it: `scrapy runs`, an export cursor, the next crawl (run row, worker row, CSV
part file).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from crawler.stats import RunCounts
from crawler.storage import open_store
from crawler.storage.liveness import live_runs, pid_alive, reap_dead_runs, this_host
from tests.support import _die_with_parent, run_crawl_in, scrapy_env, scrapy_here

if TYPE_CHECKING:
    from collections.abc import Iterator

    from crawler.demo.server import DemoSite

pytestmark = pytest.mark.timeout(120)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def gone_pid() -> int:
    """The pid of a process that has exited and been waited for."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def add_run(conn: sqlite3.Connection, started: datetime, job_id: int | None = None) -> int:
    cursor = conn.execute(
        "INSERT INTO runs (spider, started_at, job_id) VALUES ('shop', ?, ?)",
        (iso(started), job_id),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def add_worker(
    conn: sqlite3.Connection, run: int, worker: int, *, host: str, pid: int, seen: datetime
) -> None:
    conn.execute(
        "INSERT INTO run_workers (run_id, worker, host, pid, started_at, heartbeat_at, pages,"
        " items) VALUES (?, ?, ?, ?, ?, ?, 10, 7)",
        (run, worker, host, pid, iso(seen - timedelta(minutes=5)), iso(seen)),
    )


def rows(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(gone_pid())
    assert not pid_alive(0) and not pid_alive(-1)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 20
    while Path(f"/proc/{zombie.pid}").exists() and time.monotonic() < deadline:
        if Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.05)
    assert not pid_alive(zombie.pid)  # exited, not yet waited for: not running
    zombie.wait()


def test_reap_marks_gone_and_silent_processes_and_their_runs(tmp_path: Path) -> None:
    store = open_store(tmp_path / "crawler.sqlite")
    conn, host, gone = store.conn, this_host(), gone_pid()
    recent = NOW - timedelta(seconds=5)
    gone_here = add_run(conn, NOW - timedelta(hours=1))
    add_worker(conn, gone_here, 0, host=host, pid=gone, seen=recent)
    silent_elsewhere = add_run(conn, NOW - timedelta(hours=1))
    add_worker(
        conn,
        silent_elsewhere,
        0,
        host="elsewhere",
        pid=os.getpid(),
        seen=NOW - timedelta(minutes=2),
    )
    half_dead = add_run(conn, NOW - timedelta(hours=1))  # one worker gone, one alive
    add_worker(conn, half_dead, 0, host=host, pid=gone, seen=recent)
    add_worker(conn, half_dead, 1, host=host, pid=os.getpid(), seen=recent)
    old_without_workers = add_run(conn, NOW - timedelta(hours=2))
    just_started = add_run(conn, NOW - timedelta(seconds=3))
    alive_elsewhere = add_run(conn, NOW - timedelta(hours=1))
    add_worker(conn, alive_elsewhere, 0, host="elsewhere", pid=gone, seen=recent)
    finalising = add_run(conn, NOW - timedelta(hours=1))  # workers done, the parent writes
    add_worker(conn, finalising, 0, host=host, pid=gone, seen=recent)
    abandoned = add_run(conn, NOW - timedelta(hours=1))  # workers done long ago, no parent
    add_worker(conn, abandoned, 0, host=host, pid=gone, seen=NOW - timedelta(minutes=30))
    for run, seen in ((finalising, recent), (abandoned, NOW - timedelta(minutes=30))):
        conn.execute(
            "UPDATE run_workers SET finished_at = ?, finish_reason = 'finished' WHERE run_id = ?",
            (iso(seen), run),
        )

    reaped = reap_dead_runs(conn, now=NOW, stale_seconds=60, host=host)

    assert reaped == [gone_here, silent_elsewhere, old_without_workers, abandoned]
    runs = {r["id"]: r for r in rows(store.path, "SELECT * FROM runs")}
    killed = runs[gone_here]
    assert (killed["finish_reason"], killed["exit_status"]) == ("killed", 1)
    assert killed["finished_at"] == iso(recent)  # its last heartbeat
    assert killed["failure"] == "process gone (last seen 2026-12-01 11:59:55 UTC)"
    assert (killed["pages"], killed["items"]) == (10, 7)  # from its worker's last heartbeat
    assert runs[old_without_workers]["finished_at"] == iso(NOW - timedelta(hours=2))
    for alive in (half_dead, just_started, alive_elsewhere, finalising):
        assert runs[alive]["finished_at"] is None and runs[alive]["finish_reason"] is None
    workers = {(r["run_id"], r["worker"]): r for r in rows(store.path, "SELECT * FROM run_workers")}
    assert workers[(half_dead, 0)]["finish_reason"] == "killed"
    assert workers[(half_dead, 0)]["finished_at"] == iso(recent)
    assert workers[(half_dead, 1)]["finished_at"] is None
    assert workers[(alive_elsewhere, 0)]["finished_at"] is None  # another host's pid: unknown
    assert reap_dead_runs(conn, now=NOW, stale_seconds=60, host=host) == []  # once only
    store.close()


def test_live_runs_of_a_job(tmp_path: Path) -> None:
    store = open_store(tmp_path / "crawler.sqlite")
    conn, host = store.conn, this_host()
    recent = NOW - timedelta(seconds=5)
    running = add_run(conn, NOW - timedelta(hours=1), job_id=7)
    add_worker(conn, running, 0, host=host, pid=os.getpid(), seen=recent)
    add_worker(conn, running, 1, host=host, pid=gone_pid(), seen=recent)
    gone = add_run(conn, NOW - timedelta(hours=1), job_id=7)
    add_worker(conn, gone, 0, host=host, pid=gone_pid(), seen=recent)
    starting = add_run(conn, NOW - timedelta(seconds=2), job_id=7)  # parent, no child yet
    other_job = add_run(conn, NOW - timedelta(hours=1), job_id=8)
    add_worker(conn, other_job, 0, host=host, pid=os.getpid(), seen=recent)

    live = live_runs(conn, job_id=7, now=NOW, stale_seconds=60, host=host)

    assert live == [(running, host, os.getpid()), (starting, "", 0)]
    store.close()


def test_store_worker_rows_and_heartbeat_revives_a_silent_worker(tmp_path: Path) -> None:
    store = open_store(tmp_path / "crawler.sqlite")
    run = store.start_run("shop", arguments={}, profile=None, settings={}, job_id=3)
    store.start_worker(run, 0)
    (worker,) = rows(store.path, "SELECT * FROM run_workers")
    assert (worker["host"], worker["pid"], worker["finished_at"]) == (
        this_host(),
        os.getpid(),
        None,
    )
    assert rows(store.path, "SELECT job_id FROM runs")[0]["job_id"] == 3
    later = datetime.now(UTC) + timedelta(minutes=5)  # as another process sees it much later
    assert reap_dead_runs(store.conn, now=later, stale_seconds=60, host="elsewhere") == [run]
    store.heartbeat(run, 0, pages=12, items=9)  # it was only silent (suspended)
    (worker,) = rows(store.path, "SELECT * FROM run_workers")
    assert (worker["finished_at"], worker["pages"], worker["items"]) == (None, 12, 9)
    (row,) = rows(store.path, "SELECT * FROM runs")
    assert (row["finished_at"], row["finish_reason"], row["failure"]) == (None, None, None)
    counts = RunCounts(pages=20, items=15, rejects=0, duplicates=0, errors=0)
    store.finish_worker(run, 0, reason="finished", counts=counts, exit_status=0, stats={"a": 1})
    (worker,) = rows(store.path, "SELECT * FROM run_workers")
    assert (worker["finish_reason"], worker["pages"], worker["items"]) == ("finished", 20, 15)
    assert (worker["exit_status"], json.loads(worker["stats"])) == (0, {"a": 1})
    store.close()


# --- a real kill -9 ---------------------------------------------------------------------------
def start_crawl(workdir: Path, *argv: str) -> subprocess.Popen[str]:
    db, out = workdir / "crawler.sqlite", workdir / "out"
    command = [
        sys.executable, "-m", "scrapy", "crawl", *argv,
        "-s", f"SQLITE_PATH={db}", "-s", f"CSV_EXPORT_DIR={out}", "-s", "CRAWL_PROFILE=fast",
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=workdir, env=scrapy_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        preexec_fn=_die_with_parent,
    )  # fmt: skip


def wait_for(check: Any, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the crawl ended (status {proc.returncode}) before it could be killed")
        try:
            if check():
                return
        except sqlite3.Error:
            pass  # not created or migrated yet
        time.sleep(0.1)
    pytest.fail("the crawl never got far enough to be killed")


def kill_mid_crawl(workdir: Path, *argv: str) -> int:
    """Start `scrapy crawl ARGV`, SIGKILL it once products are committed and a CSV part file is
    open, and wait for it; returns its pid."""
    proc = start_crawl(workdir, *argv)
    db, out = workdir / "crawler.sqlite", workdir / "out"
    try:

        def far_enough() -> bool:
            stored = rows(db, "SELECT count(*) AS n FROM products")[0]["n"]
            return stored >= 10 and any(out.glob(".*.part-*"))

        wait_for(far_enough, proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return proc.pid


SLOW = (
    "-s",
    "CONCURRENT_REQUESTS=2",
    "-s",
    "SQLITE_BATCH_SECONDS=0.2",
    "-s",
    "SQLITE_BATCH_SIZE=5",
)


@pytest.fixture(scope="module")
def killed(demo_site: DemoSite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store and export dir left by a `products` crawl killed with SIGKILL half-way."""
    workdir = tmp_path_factory.mktemp("killed")
    kill_mid_crawl(workdir, "products", "-a", f"start_url={demo_site.url}", *SLOW)
    yield workdir


@pytest.mark.timeout(180)
def test_runs_shows_a_killed_run(killed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = killed / "crawler.sqlite"
    listed = scrapy_here(capsys, "runs", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    first = re.split(r" {2,}", listed.stdout.splitlines()[-1].strip())
    assert first[0] == "1" and first[4].startswith("killed"), listed.stdout
    detail = scrapy_here(capsys, "runs", "1", "--db", str(db)).stdout.splitlines()
    assert any(line.startswith("  finish       killed") for line in detail), detail
    workers = detail[detail.index("workers:") + 2]  # after the header
    assert workers.split()[:2] == ["0", "killed"], detail
    assert this_host() in workers


@pytest.mark.timeout(180)
def test_export_cursor_is_not_held_back_by_a_killed_run(
    killed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = killed / "crawler.sqlite"
    argv = ("export", "products", "-o", "-", "--format", "jsonl", "--fields", "sku", "--db")
    cursor = ("--changed-since-last-export", "after-kill")
    first = scrapy_here(capsys, *argv, str(db), *cursor)
    assert first.returncode == 0, first.stderr
    stored = rows(db, "SELECT count(*) AS n FROM products")[0]["n"]
    assert len(first.stdout.splitlines()) == stored >= 10
    again = scrapy_here(capsys, *argv, str(db), *cursor)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == []  # nothing new: the killed run holds nothing back


@pytest.mark.timeout(240)
def test_the_next_crawl_marks_the_killed_run_and_removes_its_part_file(
    killed: Path, demo_site: DemoSite
) -> None:
    parts = sorted(p.name for p in (killed / "out").glob(".*.part-*"))
    assert parts
    done = run_crawl_in(
        killed, "products", "-a", f"start_url={demo_site.url}", "-a", "max_products=5"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first = done.rows("SELECT * FROM runs WHERE id = 1")[0]
    assert (first["finish_reason"], first["exit_status"]) == ("killed", 1)
    assert first["finished_at"] is not None
    assert first["failure"].startswith("process gone (last seen ")
    (worker,) = done.rows("SELECT * FROM run_workers WHERE run_id = 1")
    assert (worker["finish_reason"], worker["finished_at"]) == ("killed", worker["heartbeat_at"])
    assert not list((killed / "out").glob(".*.part-*"))
    assert f"CSV: removed {len(parts)} part file" in done.stderr
    (second,) = done.rows("SELECT * FROM run_workers WHERE run_id = 2")
    assert (second["finish_reason"], second["exit_status"]) == ("finished", 0)
