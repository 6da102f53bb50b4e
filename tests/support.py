"""Helpers shared by the tests: running `scrapy crawl` in a subprocess and reading its output."""

from __future__ import annotations

import contextlib
import csv
import ctypes
import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scrapy.cmdline import execute
from twisted.internet import defer

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class CrawlResult:
    returncode: int
    stdout: str
    stderr: str
    db: Path
    out: Path

    def rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        with sqlite3.connect(self.db) as conn:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, params).fetchall()

    def csv_files(self) -> list[Path]:
        return sorted(self.out.rglob("*.csv"))

    def csv_rows(self) -> list[dict[str, str]]:
        (path,) = self.csv_files()
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))


class Clock:
    """A fake ``time.monotonic`` for components that take a clock: tests move ``now`` by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeEngine:
    """Stands in for the engine: records the reason a component closes the spider with."""

    def __init__(self, spider: Any) -> None:
        self.spider = spider
        self.reasons: list[str] = []

    def close_spider_async(self, *, reason: str) -> defer.Deferred[None]:
        self.reasons.append(reason)
        return defer.succeed(None)


# looked up once here: the child of a fork may only call what is already resolved
_PRCTL = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the test process dies (Linux only).

    pytest-timeout ends a hung test with ``os._exit``; without this, a crawl it started (and
    the Chromium that crawl started) would keep running after the suite.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def run_contained(
    command: list[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    capture_output: bool = True,
    text: bool = True,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` for commands that start children of their own (crawls, browsers).

    The command runs in a session of its own; on timeout, Ctrl-C or any error, the whole
    process group is killed, not only the direct child, and it dies with the test process.
    """
    assert capture_output and text and not check, "run_contained captures text, never checks"
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=_die_with_parent,
    ) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def run_on_terminal(
    command: list[str], *, cwd: Path, columns: int, stdout: bool, timeout: float = 80
) -> tuple[int, str]:
    """Run ``command`` with stderr (and stdout when ``stdout``) on a pseudo-terminal, as a user
    at a terminal would; returns its exit status and everything it wrote there.

    The command runs in a session of its own: past ``timeout`` seconds (or on any error) its
    whole process group is killed and ``subprocess.TimeoutExpired`` is raised.
    """
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        command, cwd=cwd, env=scrapy_env() | {"COLUMNS": str(columns), "TERM": "xterm"},
        stdin=subprocess.DEVNULL, stdout=terminal if stdout else subprocess.DEVNULL,
        stderr=terminal, start_new_session=True, preexec_fn=_die_with_parent,
    )  # fmt: skip
    os.close(terminal)
    deadline = time.monotonic() + timeout
    seen = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(command, timeout, output=seen)
            ready, _, _ = select.select([controller], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        return proc.wait(timeout=max(0.1, deadline - time.monotonic())), seen.decode(
            errors="replace"
        )
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        os.close(controller)


def scrapy_env() -> dict[str, str]:
    return dict(os.environ, SCRAPY_SETTINGS_MODULE="crawler.settings", PYTHONPATH=str(ROOT))


def run_crawl_in(
    workdir: Path,
    spider: str,
    *args: str,
    profile: str = "fast",
    timeout: float = 150,
    subprocess: bool = False,
) -> CrawlResult:
    """`scrapy crawl SPIDER ARGS…` with the store and CSV under workdir.

    In this process by default (``tests.inprocess``: the command's own checks and exit-status
    rule, the crawl on the session's reactor); in a ``python -m scrapy`` subprocess with
    ``subprocess=True``, for tests of what only a process shows (signals, the terminal, the
    exit status of ``scrapy`` itself).
    """
    db, out = workdir / "crawler.sqlite", workdir / "out"
    argv = [
        spider, *args,
        "-s", f"SQLITE_PATH={db}", "-s", f"CSV_EXPORT_DIR={out}",
        "-s", f"CRAWL_PROFILE={profile}",
    ]  # fmt: skip
    if not subprocess:
        from tests.inprocess import crawl_in_process

        status, stdout, stderr = crawl_in_process(workdir, argv)
        return CrawlResult(status, stdout, stderr, db, out)
    command = [sys.executable, "-m", "scrapy", "crawl", *argv]
    done = run_contained(command, cwd=workdir, env=scrapy_env(), timeout=timeout)
    return CrawlResult(done.returncode, done.stdout, done.stderr, db, out)


def scrapy_here(
    capsys: pytest.CaptureFixture[str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``scrapy ARGS`` run by Scrapy's own entry point in this process: the same command code
    as a subprocess, without a second or more of start-up per call (most tests make several)."""
    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as exited:
        patch.setenv("SCRAPY_SETTINGS_MODULE", "crawler.settings")
        if cwd is not None:
            patch.chdir(cwd)
        execute(["scrapy", *args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), int(exited.value.code or 0), out, err)
