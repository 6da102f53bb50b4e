"""``JobRunner``: one run of a job as its own ``scrapy crawl`` process, under the job's lock.

Each run logs to ``<log dir>/<job>/<UTC start time>.log``. A run still going after the job's
``max_runtime``, or when the scheduler stops, gets SIGINT (Scrapy's graceful stop), then
``SCHEDULE_STOP_TIMEOUT`` seconds to finish, then SIGKILL. Thread-safe: the daemon runs jobs
from APScheduler's worker threads.

The line of a run that did not end well says why (``…; why: errors: 3 of 3 requests failed``):
the crawl's own ``run failed: …`` lines (the health monitor's verdict, as in the runs row), read
from the end of its log. The log, not the store: every crawl writes one, the runner knows which
is whose (a store holds many runs, and may be the thing that failed), and the lines are masked
already by the crawl's secret filter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crawler.scheduling.lock import JobLock
from crawler.scheduling.state import JobState

if TYPE_CHECKING:
    from pathlib import Path

    from crawler.scheduling.job import Job

logger = logging.getLogger(__name__)

FAILED = frozenset({"failed", "timeout", "stopped"})
FAILURE_MARK = "run failed: "  # how a crawl logs each reason it failed (HealthMonitor)
WORKERS_FAILURE_MARK = "workers: run failed: "  # the same, said by the parent of a WORKERS run
USAGE_ERROR_MARK = "error: "  # the one line of a crawl that did not start (exit status 2)
LOG_TAIL_BYTES = 1024 * 1024  # the verdict is logged at close: the end of the log holds it
MAX_REASONS = 5  # reasons quoted in the job's line; the log has the rest


@dataclass(frozen=True)
class Outcome:
    job: str
    status: str  # ok | failed | timeout | stopped | refused | skipped
    exit_code: int | None = None
    log: Path | None = None
    why: str | None = None  # the crawl's own words for its failure (``failure_reasons``)

    @property
    def failed(self) -> bool:
        return self.status in FAILED


class JobRunner:
    def __init__(
        self,
        log_dir: Path,
        base_settings: dict[str, str],
        stop_timeout: float,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.base_settings = base_settings
        self.stop_timeout = stop_timeout
        self.env = env
        self.stopping = False
        self.hurry = False  # kill running crawls now instead of waiting stop_timeout
        self.refused = 0
        self._active: dict[int, subprocess.Popen[bytes]] = {}
        self._guard = threading.Lock()

    def run(self, job: Job) -> Outcome:
        """Run ``job`` once and wait for it; refused when its previous run still holds the lock."""
        if self.stopping:
            return Outcome(job.name, "skipped")
        directory = self.log_dir / job.name
        lock, state = JobLock(directory / "run.lock"), JobState(directory)
        try:
            return self._run(job, lock, state, directory)
        except OSError as exc:  # an unwritable log dir, a broken state file, no Python to start
            logger.error(f"job {job.name}: cannot run: {exc}")
            return Outcome(job.name, "failed")

    def _run(self, job: Job, lock: JobLock, state: JobState, directory: Path) -> Outcome:
        if not lock.acquire():
            with self._guard:
                self.refused += 1
            refused = state.add_refusal().refused
            logger.warning(
                f"job {job.name}: not started: its previous run is still running"
                f" ({refused} refused so far)"
            )
            return Outcome(job.name, "refused")
        try:
            return self._run_locked(job, lock, state, directory)
        finally:
            lock.release()

    def _run_locked(self, job: Job, lock: JobLock, state: JobState, directory: Path) -> Outcome:
        started = datetime.now(UTC)
        log_path = _log_path(directory, started)
        state.update(last_start=started)
        assert lock.fd is not None
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                job.command(self.base_settings),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # a Ctrl-C on the terminal reaches only the scheduler
                pass_fds=(lock.fd,),  # the crawl holds the lock too, even if we die
            )
        with self._guard:
            self._active[process.pid] = process
            if self.stopping:
                _signal(process, signal.SIGINT)
        logger.info(f"job {job.name}: started `scrapy crawl {job.spider}` (pid {process.pid})")
        try:
            status = self._wait(job, process)
        finally:
            with self._guard:
                self._active.pop(process.pid, None)
        code = process.returncode
        state.update(last_end=datetime.now(UTC), last_exit=code)
        elapsed = (datetime.now(UTC) - started).total_seconds()
        message = f"job {job.name}: {status}, exit status {code}, {elapsed:.1f} s, log {log_path}"
        why = None if status == "ok" else failure_reasons(log_path)
        if why:
            message += f"; why: {why}"
        logger.log(logging.INFO if status == "ok" else logging.ERROR, message)
        return Outcome(job.name, status, code, log_path, why)

    def _wait(self, job: Job, process: subprocess.Popen[bytes]) -> str:
        limit = job.max_runtime.total_seconds() if job.max_runtime else None
        try:
            process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            logger.error(f"job {job.name}: still running after max_runtime {job.max_runtime}")
            self._stop_process(process)
            return "timeout"
        if process.returncode == 0:
            return "ok"
        return "stopped" if self.stopping else "failed"

    def _stop_process(self, process: subprocess.Popen[bytes]) -> None:
        _signal(process, signal.SIGINT)
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            logger.error(f"pid {process.pid}: not stopped {self.stop_timeout:g} s after SIGINT")
            _kill_group(process)
            process.wait()

    def stop(self) -> None:
        """Start no more runs; ask every running crawl to stop (SIGINT)."""
        with self._guard:
            self.stopping = True
            running = list(self._active.values())
        for process in running:
            _signal(process, signal.SIGINT)
        if running:
            logger.info(f"asked {len(running)} running crawl(s) to stop")

    def wait_stopped(self) -> None:
        """Wait up to ``stop_timeout`` for the running crawls, then kill what is left."""
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and not self.hurry:
            with self._guard:
                if not self._active:
                    return
            time.sleep(0.05)
        with self._guard:
            left = list(self._active.values())
        for process in left:
            logger.error(f"pid {process.pid}: not stopped {self.stop_timeout:g} s after SIGINT")
            _kill_group(process)

    @property
    def running(self) -> int:
        with self._guard:
            return len(self._active)


def failure_reasons(log: Path) -> str | None:
    """Why the crawl that wrote ``log`` failed, in its own words: its ``run failed:`` lines
    (those of a ``WORKERS`` parent when there are any: its workers only judged their share),
    else the ``error:`` line of a crawl that did not start; None when the log says neither."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = text.splitlines()
    marked = [line for line in lines if WORKERS_FAILURE_MARK in line] or [
        line for line in lines if FAILURE_MARK in line
    ]
    reasons = list(dict.fromkeys(line.split(FAILURE_MARK, 1)[1].strip() for line in marked))
    if not reasons:
        usage = [line for line in lines if line.startswith(USAGE_ERROR_MARK)]
        return usage[-1][len(USAGE_ERROR_MARK) :].strip() if usage else None
    more = len(reasons) - MAX_REASONS
    return "; ".join(reasons[:MAX_REASONS]) + (
        f"; and {more} more (see the log)" if more > 0 else ""
    )


def _log_path(directory: Path, started: datetime) -> Path:
    stem = f"{started:%Y%m%dT%H%M%SZ}"
    path, n = directory / f"{stem}.log", 1
    while path.exists():
        n += 1
        path = directory / f"{stem}-{n}.log"
    return path


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # its own session: browsers it started go too
