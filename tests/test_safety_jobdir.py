"""JOBDIR left by an unclean stop: refused with one line, never a silent empty run (fault D2)."""

from __future__ import annotations

import os
import signal
import sqlite3
from typing import TYPE_CHECKING

import pytest

from crawler.safety.jobdir import MARKER, UncleanJobDir, check_jobdir
from crawler.storage.liveness import this_host
from tests.support import run_crawl_in
from tests.test_storage_liveness import SLOW, gone_pid, start_crawl, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from crawler.demo.server import DemoSite

pytestmark = pytest.mark.timeout(180)


def test_marker_of_a_gone_or_live_process_and_seen_requests_without_a_queue(
    tmp_path: Path,
) -> None:
    jobdir = tmp_path / "job"
    check_jobdir(jobdir)  # created, private
    check_jobdir(jobdir)  # empty: fine
    (jobdir / MARKER).write_text(f"{gone_pid()} {this_host()}\n")
    with pytest.raises(UncleanJobDir, match="did not stop cleanly") as gone:
        check_jobdir(jobdir)
    assert "remove the directory" in str(gone.value) and "drop JOBDIR" in str(gone.value)
    (jobdir / MARKER).write_text(f"{os.getpid()} {this_host()}\n")
    with pytest.raises(UncleanJobDir, match=f"in use by another crawl \\(pid {os.getpid()}\\)"):
        check_jobdir(jobdir)
    (jobdir / MARKER).unlink()
    (jobdir / "requests.seen").write_text("0123abcd\n")  # a JOBDIR from before the marker
    with pytest.raises(UncleanJobDir, match="seen requests and no saved queue"):
        check_jobdir(jobdir)
    (jobdir / "requests.queue").mkdir()
    (jobdir / "requests.queue" / "active.json").write_text("[]")  # what a clean close saves
    check_jobdir(jobdir)


def test_a_clean_crawl_leaves_no_marker_and_its_jobdir_is_used_again(
    tmp_path: Path, demo_site: DemoSite
) -> None:
    jobdir = tmp_path / "job"
    args = ("products", "-a", f"start_url={demo_site.url}", "-a", "max_products=3")
    first = run_crawl_in(tmp_path, *args, "-s", f"JOBDIR={jobdir}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert (jobdir / "requests.queue" / "active.json").exists() and not (jobdir / MARKER).exists()
    again = run_crawl_in(tmp_path, *args, "-s", f"JOBDIR={jobdir}")
    # accepted: Scrapy's resume of a finished job (nothing left to fetch), not a refusal
    assert "Spider opened" in again.stderr and "error: JOBDIR" not in again.stderr
    assert not (jobdir / MARKER).exists()


def test_a_jobdir_left_by_kill_9_is_refused_with_one_line(
    tmp_path: Path, demo_site: DemoSite
) -> None:
    jobdir = tmp_path / "job"
    args = ("products", "-a", f"start_url={demo_site.url}", "-s", f"JOBDIR={jobdir}")
    proc = start_crawl(tmp_path, *args, *SLOW)
    db = tmp_path / "crawler.sqlite"

    def far_enough() -> bool:
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM products").fetchone()[0]
        seen = jobdir / "requests.seen"
        return stored >= 10 and seen.exists() and seen.stat().st_size > 0

    try:
        wait_for(far_enough, proc)
        assert (jobdir / MARKER).read_text().split()[0] == str(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    hits = sum(demo_site.hits.values())
    again = run_crawl_in(tmp_path, *args)

    assert again.returncode == 2, again.stderr[-3000:]
    (line,) = again.stderr.strip().splitlines()
    assert line.startswith(f"error: JOBDIR {jobdir} was left by a crawl that did not stop cleanly")
    assert f"(pid {proc.pid} on " in line
    assert "remove the directory" in line and "drop JOBDIR to use the store's frontier" in line
    assert sum(demo_site.hits.values()) == hits  # refused before any request
