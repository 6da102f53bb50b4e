"""``WORKERS=N``: one crawl run by N ``scrapy crawl`` processes that share one durable frontier.

``scrapy crawl SPIDER -s WORKERS=N`` (N > 1, or ``auto``: one per core) does not crawl itself: it
supervises N worker processes, each running the same command line plus ``-s WORKER_RUN_ID=<run>
-s WORKER_INDEX=<k> -s WORKER_COUNT=<N>``. The supervisor

1. chooses the frontier job (``crawler.frontier.jobs.choose_job``: the unfinished one of the same
   spider and arguments, or a new one) and inserts the run's one ``runs`` row with that job; the
   workers attach to the row and lease the job's requests;
2. starts the workers; worker k logs to ``<SCHEDULE_LOG_DIR>/workers/run-<run>-worker-<k>.log``
   and writes its own CSV files (``CSV_FILENAME`` with ``-w<k>`` before the extension);
3. shows one progress line for all of them (the job's rows by state, the workers' heartbeats);
4. restarts a worker killed by a signal, at most ``MAX_RESTARTS`` times each;
5. passes Ctrl-C and SIGTERM on to the workers, which stop cleanly; a second Ctrl-C kills them;
6. completes the run row from the workers' rows (finish reason ``finished`` only when every
   worker finished; counts summed, the dict stats too; the worst exit status), lists the CSV
   files and exits with that status;
7. then does what a single process's closing extensions do (the workers skip them): writes the
   HTML report (``REPORT_AT_CLOSE``; ``  report: PATH``) and calls the alert hooks (``ALERT_*``)
   with the run's summary, read from its final row. Neither ever changes the exit status.

Settings: ``WORKERS``, ``SCHEDULE_LOG_DIR``, ``CSV_FILENAME``, ``FRONTIER_FRESH``,
``FRONTIER_RESUME_MAX_AGE``, ``RUN_STALE_SECONDS``, ``PROGRESS_TTY_INTERVAL``,
``PROGRESS_LOG_INTERVAL``, the store's (``crawler.storage.StoreConfig``), the report's
(``REPORT_*``), the alert hooks' (``ALERT_*``), ``SNAPSHOT_DIR`` and ``SCHEDULE_JOB``.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler import defaults
from crawler import stats as keys
from crawler.durations import parse_duration
from crawler.exceptions import ArgumentError
from crawler.exitcodes import EXIT_FAILED
from crawler.extensions.alerts import AlertConfig, call_hooks, summary_of
from crawler.extensions.progress import replace_file
from crawler.extensions.runrecorder import command_line_settings
from crawler.frontier.jobs import AlreadyRunning, choose_job, job_counts, job_key
from crawler.frontier.scheduler import frontier_wanted
from crawler.quality.baseline import previous_figures
from crawler.quality.checks import (
    CheckResult,
    QualityPolicy,
    RunFigures,
    breaches,
    run_checks,
)
from crawler.safety.secrets import Redactor, arguments_secrets, settings_secrets
from crawler.storage import Store, StoreConfig, StoreError
from crawler.storage.liveness import this_host
from crawler.storage.quality import RunQuality, run_coverage

if TYPE_CHECKING:
    from argparse import Namespace
    from collections.abc import Mapping, Sequence
    from types import FrameType

    from scrapy.settings import BaseSettings

    from crawler.report import ReportConfig

MAX_RESTARTS = 3  # restarts of one worker killed by a signal
KILLED = "killed"  # the finish reason of a worker that left no finished row
CSV_PATHS = "csv/paths"  # the CSV pipeline's stat: the files a worker published
# stats of the workers kept as the largest value instead of summed
_LARGEST = frozenset(
    {"elapsed_time_seconds", keys.HEALTH_STATUS, keys.RUN_ID, "frontier/job_id", "memusage/max"}
)


def worker_count(value: object) -> int:
    """``WORKERS`` as a number of processes: an int >= 1, or ``auto`` (the number of cores)."""
    text = str(value).strip().lower()
    if text == "auto":
        return os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ArgumentError(
            f"WORKERS must be a number of processes (1 or more) or 'auto', not {value!r}"
        )
    return count


def workers_wanted(settings: BaseSettings) -> int:
    """N when this command is to supervise N workers; 0 for one process (or in a worker)."""
    count = worker_count(settings.get("WORKERS") or 1)
    return count if count > 1 and settings.get("WORKER_INDEX") is None else 0


def worker_arguments(name: str, target: str, spargs: Sequence[str], opts: Namespace) -> list[str]:
    """The ``scrapy`` command line each worker repeats: ``NAME TARGET`` with the ``-a``, ``-s``
    and log options given (``-o``/``-O`` are refused: one file cannot take N writers)."""
    if getattr(opts, "output", None) or getattr(opts, "overwrite_output", None):
        raise ArgumentError("-o/-O cannot be shared by WORKERS > 1: each worker writes CSV files")
    command = [name, target]
    command += [f"-a{value}" for value in spargs]
    command += [f"-s{value}" for value in opts.set or []]
    command += ["--nolog"] if opts.nolog else []
    command += [f"--loglevel={opts.loglevel}"] if opts.loglevel else []
    return command


def worker_filename(template: str, index: int) -> str:
    """``CSV_FILENAME`` for worker ``index``: ``a-{run}.csv`` -> ``a-{run}-w1.csv``."""
    path = Path(template)
    return str(path.with_name(f"{path.stem}-w{index}{path.suffix}"))


@dataclass(frozen=True)
class AfterRun:
    """What the supervisor does once the run row is final, in place of a single process's
    closing extensions (``ReportAtClose``, ``AlertHooks``), which the workers skip."""

    report: ReportConfig | None = None  # REPORT_AT_CLOSE on
    alerts: AlertConfig | None = None  # ALERT_COMMAND or ALERT_WEBHOOK set
    job: str | None = None  # SCHEDULE_JOB: the schedule's job name, for the summary
    snapshot_dir: str | None = None  # SNAPSHOT_DIR: the run's snapshot folder, for the summary

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> AfterRun:
        """``ValueError`` (one line) for a bad ``ALERT_*`` value."""
        if not settings.getbool("RUN_RECORD", defaults.RUN_RECORD):
            return cls()  # as in one process: no run recorded, nothing to report nor alert
        report = None
        if settings.getbool("REPORT_AT_CLOSE", defaults.REPORT_AT_CLOSE):
            from crawler.extensions.reportwriter import report_config  # the report package

            report = report_config(settings)
        alerts: AlertConfig | None = AlertConfig.from_settings(settings)
        if alerts is not None and not alerts.command and not alerts.webhook:
            alerts = None
        snapshots = settings.get("SNAPSHOT_DIR") or defaults.SNAPSHOT_DIR
        return cls(
            report=report,
            alerts=alerts,
            job=str(settings.get("SCHEDULE_JOB") or "") or None,
            snapshot_dir=str(snapshots) if snapshots else None,
        )


@dataclass(frozen=True)
class WorkersConfig:
    count: int
    spider: str
    command: tuple[str, ...]  # `scrapy` arguments repeated for every worker: crawl SPIDER -a … -s …
    log_dir: Path
    csv_filename: str
    fresh: bool
    max_age_seconds: float
    stale_seconds: float
    interval: float  # seconds between progress updates
    live: bool  # stderr is a terminal: one line redrawn in place
    health: keys.HealthPolicy | None  # None: HEALTH_ENABLED is off
    quality: QualityPolicy | None = None  # the checks across runs (with HEALTH_ENABLED)
    # PROGRESS_STATUS_FILE: the run's figures as JSON (each worker writes PATH-w<k> of its own)
    status_file: Path | None = None
    status_interval: float = 2.0
    after: AfterRun = AfterRun()  # the report and the alert hooks, once the row is final

    @classmethod
    def from_settings(
        cls, settings: BaseSettings, *, count: int, spider: str, command: Sequence[str]
    ) -> WorkersConfig:
        """Raises ``ArgumentError`` for a setting the workers cannot run with."""
        try:
            shared = frontier_wanted(settings)  # FRONTIER is one of its values
        except ValueError as exc:
            raise ArgumentError(str(exc)) from None
        if not shared:
            raise ArgumentError(
                "WORKERS > 1 shares the store's frontier: it needs FRONTIER=sqlite and"
                " SQLITE_ENABLED, and no JOBDIR"
            )
        try:
            max_age = parse_duration(settings.get("FRONTIER_RESUME_MAX_AGE"), allow_zero=True)
        except ValueError as exc:
            raise ArgumentError(f"FRONTIER_RESUME_MAX_AGE: {exc}") from None
        try:
            health = keys.HealthPolicy.from_settings(settings)
            quality = QualityPolicy.from_settings(settings)
            after = AfterRun.from_settings(settings)
        except ValueError as exc:
            raise ArgumentError(str(exc)) from None
        live = sys.stderr.isatty()
        return cls(
            count=count,
            spider=spider,
            command=tuple(command),
            log_dir=Path(settings.get("SCHEDULE_LOG_DIR") or "data/logs") / "workers",
            csv_filename=str(settings.get("CSV_FILENAME")),
            fresh=settings.getbool("FRONTIER_FRESH"),
            max_age_seconds=max_age.total_seconds(),
            stale_seconds=settings.getfloat("RUN_STALE_SECONDS"),
            interval=settings.getfloat(
                "PROGRESS_TTY_INTERVAL" if live else "PROGRESS_LOG_INTERVAL"
            ),
            live=live,
            status_file=Path(str(status)).expanduser()
            if (status := settings.get("PROGRESS_STATUS_FILE"))
            else None,
            status_interval=max(0.1, settings.getfloat("PROGRESS_STATUS_INTERVAL", 2.0)),
            health=health if settings.getbool("HEALTH_ENABLED") else None,
            quality=quality if settings.getbool("HEALTH_ENABLED") else None,
            after=after,
        )


@dataclass
class Worker:
    index: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    death: str = ""  # how its last process ended

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Run:
    """The run being supervised: its row and its frontier job."""

    run_id: int
    job_id: int
    started: float = field(default_factory=time.monotonic)
    failures: tuple[str, ...] = ()  # the verdict's lines, once the row is final


class Supervisor:
    """Runs the workers of one run and completes its row (module docstring)."""

    def __init__(
        self,
        config: WorkersConfig,
        store: Store,
        arguments: Mapping[str, Any],
        row: RunRow,
        redactor: Redactor | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.arguments = arguments  # as the spider parses them: the job's key
        self.row = row
        self.redactor = redactor or Redactor(())  # the crawl's secrets, masked in the summary
        self.stops = 0  # Ctrl-C / SIGTERM received
        self._stops_said = 0
        self.workers: list[Worker] = []
        self._last_line = 0.0
        self._last_status = 0.0
        self._status_warned = False
        self._started_at = datetime.now(UTC)

    def run(self) -> int:
        """Choose the job, insert the run row, run the workers to the end; the exit status."""
        run = self._start()
        self.workers = [
            Worker(k, self.config.log_dir / f"run-{run.run_id}-worker-{k}.log")
            for k in range(self.config.count)
        ]
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for worker in self.workers:
                if not self.stops:  # Ctrl-C while they start: the rest are not started
                    self._spawn(run, worker)
            while any(worker.process is not None for worker in self.workers):
                self._say_stops()
                self._watch(run)
                self._progress(run)
                time.sleep(0.2)
            self._say_stops()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_all()
        self._progress(run, final=True)
        status = self._finish(run)
        self._write_status(run, final=True)
        after_run(self.config.after, self.store, run.run_id, run.failures, self.redactor)
        return status

    # --- start --------------------------------------------------------------------------------
    def _start(self) -> Run:
        now = datetime.now(UTC)
        key = job_key(self.config.spider, self.arguments)
        try:
            choice = choose_job(
                self.store.conn, spider=self.config.spider, key=key, fresh=self.config.fresh,
                max_age_seconds=self.config.max_age_seconds, now=now,
                stale_seconds=self.config.stale_seconds, host=this_host(),
            )  # fmt: skip
        except AlreadyRunning:
            raise  # supervise() prints it: exit 1, as a single process refusing it
        row = self.row
        run_id = self.store.start_run(
            row.spider, arguments=row.arguments, profile=row.profile, settings=row.settings
        )
        self.store.set_run_job(run_id, choice.job_id)
        if choice.resumed:
            state = f"resuming job {choice.job_id}: {choice.done} done, {choice.queued} queued"
        else:
            note = f" ({choice.note}: starting afresh)" if choice.note else ""
            state = f"new job {choice.job_id}{note}"
        say(f"run {run_id}: {self.config.count} workers, {state}; logs in {self.config.log_dir}")
        return Run(run_id, choice.job_id)

    def _spawn(self, run: Run, worker: Worker) -> None:
        extra = {
            "WORKER_RUN_ID": run.run_id,
            "WORKER_INDEX": worker.index,
            "WORKER_COUNT": self.config.count,
            "CSV_FILENAME": worker_filename(self.config.csv_filename, worker.index),
        }
        command = [sys.executable, "-m", "scrapy", *self.config.command]
        for name, value in extra.items():
            command += ["-s", f"{name}={value}"]
        with worker.log.open("ab") as log:  # a restarted worker goes on in the same file
            worker.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                process_group=0, preexec_fn=_stop_with_parent,
            )  # fmt: skip

    # --- while it runs ------------------------------------------------------------------------
    def _watch(self, run: Run) -> None:
        """Notice workers that ended; restart one killed by a signal (not by us)."""
        for worker in self.workers:
            process = worker.process
            if process is None or process.poll() is None:
                continue
            worker.process = None
            if process.returncode >= 0:
                worker.death = f"exited with status {process.returncode} (see {worker.log})"
                continue
            worker.death = f"killed by {_signal_name(-process.returncode)}"
            if self.stops or worker.restarts >= MAX_RESTARTS:
                say(f"worker {worker.index} (pid {process.pid}) {worker.death}")
                continue
            worker.restarts += 1
            say(
                f"worker {worker.index} (pid {process.pid}) {worker.death}: restarting it"
                f" ({worker.restarts} of {MAX_RESTARTS})"
            )
            self._spawn(run, worker)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        """First Ctrl-C (or SIGTERM): the workers stop cleanly. Second: they are killed.
        (A signal handler: it prints nothing, the loop says what happened.)"""
        self.stops += 1
        self._signal_all(signum if self.stops == 1 else signal.SIGKILL)

    def _say_stops(self) -> None:
        if self.stops > self._stops_said:
            self._stops_said = self.stops
            if self.stops == 1:
                say("stopping the workers cleanly (Ctrl-C again to kill them)")
            else:
                say("killing the workers")

    def _signal_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.running:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signum)

    def _kill_all(self) -> None:
        """Nothing outlives the supervisor (an error in it included)."""
        self._signal_all(signal.SIGKILL)
        for worker in self.workers:
            if worker.process is not None:
                worker.process.wait()

    def _progress(self, run: Run, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last_status >= self.config.status_interval:
            self._last_status = now
            self._write_status(run)
        if not final and now - self._last_line < self.config.interval:
            return
        self._last_line = now
        try:
            rows = self.store.run_workers(run.run_id)
            counts = job_counts(self.store.conn, run.job_id)
        except (StoreError, sqlite3.Error) as exc:  # busy: the next update may work
            line = f"progress not read: {exc}"
        else:
            elapsed = now - run.started
            pages = sum(int(row["pages"] or 0) for row in rows)
            items = sum(int(row["items"] or 0) for row in rows)
            running = sum(worker.running for worker in self.workers)
            # the frontier's rows are current; the workers' pages and items are as of their last
            # heartbeat (RUN_HEARTBEAT_SECONDS)
            line = (
                f"{running}/{self.config.count} workers · done {counts['done']}"
                f" ({counts['done'] / max(elapsed, 0.001):.1f}/s) · queued {counts['queued']} ·"
                f" leased {counts['leased']} · failed {counts['failed']} · pages {pages} ·"
                f" items {items} · {elapsed:.0f}s"
            )
        if self.config.live:
            sys.stderr.write(f"\r\x1b[K{line}" + ("\n" if final else ""))
            sys.stderr.flush()
        elif not final:
            say(line)

    def _write_status(self, run: Run, *, final: bool = False) -> None:
        """The run's figures for dashboards (``PROGRESS_STATUS_FILE``): the frontier's rows and
        the workers' heartbeats; ``final``: the run row's reason and exit status. No total nor
        ETA: the first worker reads start() as the crawl goes (the workers' own files)."""
        path = self.config.status_file
        if path is None:
            return
        try:
            rows = self.store.run_workers(run.run_id)
            counts = job_counts(self.store.conn, run.job_id)
            row = self.store.run(run.run_id) if final else None
        except (StoreError, sqlite3.Error):
            return  # busy: the next update may work
        elapsed = time.monotonic() - run.started
        status = {
            "version": 1, "state": "closed" if final else "running",
            "spider": self.config.spider, "run_id": run.run_id, "workers": self.config.count,
            "running_workers": sum(worker.running for worker in self.workers),
            "pid": os.getpid(),
            "started_at": self._started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "elapsed": round(elapsed, 2),
            "pages": sum(int(r["pages"] or 0) for r in rows),
            "items": sum(int(r["items"] or 0) for r in rows),
            "errors": row["errors"] if row else None, "rejects": row["rejects"] if row else None,
            "queue": counts["queued"], "in_flight": counts["leased"], "done": counts["done"],
            "failed": counts["failed"],
            "pages_per_second": round(counts["done"] / max(elapsed, 0.001), 2),
            "total": None, "percent": None, "eta_seconds": None,
            "finish_reason": row["finish_reason"] if row else None,
            "exit_status": row["exit_status"] if row else None,
        }  # fmt: skip
        try:
            replace_file(path, json.dumps(status, indent=1) + "\n")
        except OSError as exc:
            if not self._status_warned:
                self._status_warned = True
                say(f"status file {path} not written: {exc.strerror or exc}")

    # --- the end ------------------------------------------------------------------------------
    def _finish(self, run: Run) -> int:
        rows = {int(row["worker"]): row for row in self.store.run_workers(run.run_id)}
        outcomes = [self._outcome(worker, rows.get(worker.index)) for worker in self.workers]
        reason = next((r for r, _, _ in outcomes if r != "finished"), "finished")
        stats = merge_stats([row["stats"] or {} for row in rows.values()])
        stats["workers/count"] = self.config.count
        stats["workers/restarts"] = sum(worker.restarts for worker in self.workers)
        counts = dataclasses.replace(
            keys.run_counts(stats),
            pages=sum(int(row["pages"] or 0) for row in rows.values()),
            items=sum(int(row["items"] or 0) for row in rows.values()),
        )
        verdict, results = self._judge(run, reason, stats)
        checks = [*(stats.get(keys.QUALITY_CHECKS) or []), *(r.as_dict() for r in results)]
        stats[keys.QUALITY_CHECKS] = checks
        stats[keys.QUALITY_BREACHES] = sum(not check.get("passed") for check in checks)
        if reason == "finished" and stats[keys.QUALITY_BREACHES]:
            reason = keys.QUALITY_FAILED  # the crawl finished, its data failed a check
        status = max(verdict.exit_status, *(status for _, status, _ in outcomes))
        failures = dict.fromkeys(verdict.failures)  # the run's, then what only a worker had
        for index, (_, _, text) in enumerate(outcomes):
            if text and text not in failures:
                failures[f"worker {index}: {text}"] = None
        failure = "; ".join(failures) or None
        run.failures = tuple(failures)
        stats[keys.HEALTH_STATUS], stats[keys.HEALTH_FAILURE] = status, failure
        self.store.finish_run(
            run.run_id, reason=reason, counts=counts, exit_status=status, stats=stats,
            failure=failure, quality=RunQuality(coverage=None, checks=checks),
        )  # fmt: skip
        say(
            f"run {run.run_id} {reason}: {counts.pages} pages, {counts.items} items,"
            f" {counts.errors} errors; exit status {status}"
        )
        for path in stats.get(CSV_PATHS) or []:
            say(f"CSV: {path}")
        return status

    def _judge(
        self, run: Run, reason: str, stats: Mapping[str, Any]
    ) -> tuple[keys.Verdict, list[CheckResult]]:
        """The health rules on the whole run, and the checks across runs that a worker cannot
        make alone (``crawler.extensions.health``): the items and the field coverage of all
        the workers against the previous runs'. The workers checked their own ratios."""
        policy = self.config.health
        if policy is None:
            return keys.Verdict(0), []  # the workers' own statuses (finish reasons) still count
        verdict = keys.judge(reason, stats, policy)
        results = self._checks(run, stats, policy)
        failures = (*verdict.failures, *breaches(results))
        for line in failures:
            say(f"run failed: {line}")
        return keys.Verdict(1 if failures else 0, failures), results

    def _checks(
        self, run: Run, stats: Mapping[str, Any], policy: keys.HealthPolicy
    ) -> list[CheckResult]:
        quality = self.config.quality
        if quality is None or keys.fetched_nothing(stats, policy.items(stats)):
            return []
        if stats.get(keys.FRONTIER_RESUMED):
            return []  # it finishes another run's crawl: its items are only the rest
        whole = dataclasses.replace(quality, checks=quality.checks & {"items", "coverage"})
        try:
            coverage = run_coverage(self.store.conn, [run.run_id]).get(run.run_id, {})
            previous = previous_figures(
                self.store, self.config.spider, self.arguments, run.run_id, quality
            )
        except (sqlite3.Error, StoreError, ValueError) as exc:
            say(f"previous runs not read, this run not compared with them: {exc}")
            return []
        current = RunFigures.from_stats(stats, coverage, quality.item_stats)
        return run_checks(current, previous, whole)

    def _outcome(self, worker: Worker, row: Mapping[str, Any] | None) -> tuple[str, int, str]:
        """A worker's finish reason, exit status and failure text ('' when it did well)."""
        if row is None or row["finished_at"] is None:
            return KILLED, EXIT_FAILED, worker.death or "ended without finishing its run"
        reason, status = str(row["finish_reason"]), int(row["exit_status"] or 0)
        stats = row["stats"] or {}
        failure = str(stats.get(keys.HEALTH_FAILURE) or (reason if status else ""))
        return reason, status, failure


@dataclass(frozen=True)
class RunRow:
    """What the run's ``runs`` row records, secrets masked (as ``RunRecorder`` records them)."""

    spider: str
    arguments: Mapping[str, Any]
    profile: str | None
    settings: Mapping[str, Any]


def supervise(config: WorkersConfig, settings: BaseSettings, arguments: Mapping[str, Any]) -> int:
    """Run ``config.count`` workers of one run; their exit status (module docstring).

    ``arguments`` are the spider's, as it parses them: with the spider's name they identify the
    job. A live crawl already working on that job is one line and exit 1.
    """
    redactor = Redactor(settings_secrets(settings) | arguments_secrets(arguments))
    row = RunRow(
        spider=config.spider,
        arguments=redactor.mask("", arguments),
        profile=settings.get("CRAWL_PROFILE"),
        settings=command_line_settings(settings, redactor),
    )
    store = Store(StoreConfig.from_settings(settings))
    try:
        store.open()
    except StoreError as exc:
        say(f"SQLite store unavailable: {exc}")
        return EXIT_FAILED
    try:
        return Supervisor(config, store, arguments, row, redactor).run()
    except AlreadyRunning as exc:
        say(str(exc))
        return EXIT_FAILED
    except (StoreError, sqlite3.Error) as exc:
        say(f"SQLite store: {exc}")
        return EXIT_FAILED
    except OSError as exc:  # the log directory, or a worker that cannot be started
        say(f"the workers cannot start: {exc}")
        return EXIT_FAILED
    finally:
        store.close()


def after_run(
    after: AfterRun, store: Store, run_id: int, failures: Sequence[str], redactor: Redactor
) -> None:
    """Once the run row is final: the HTML report (``  report: PATH``), then the alert hooks
    with the run's summary. A failure of either is one line; none changes the exit status."""
    report = _write_report(after.report, run_id) if after.report is not None else None
    if after.alerts is None:
        return
    try:
        row = store.run(run_id)
        if row is None:
            return
        summary = run_summary(row, after, store, failures, report, redactor)
        if after.alerts.wanted(int(summary["exit_status"])):
            call_hooks(after.alerts, summary)  # each hook's failure: one WARNING of its own
    except Exception as exc:  # the store, or a bug: never the run's verdict
        say(f"alert hooks not called: {exc}")


def _write_report(config: ReportConfig, run_id: int) -> str | None:
    try:
        from crawler.report import build_run_report  # loads matplotlib when it draws

        path = build_run_report(config, run_id, None)
    except Exception as exc:  # ReportError, or any other: a report never fails the run
        say(f"HTML report of run {run_id} not written: {exc}")
        return None
    sys.stderr.write(f"  report: {path}\n")
    sys.stderr.flush()
    return str(path)


def run_summary(
    row: Mapping[str, Any],
    after: AfterRun,
    store: Store,
    failures: Sequence[str],
    report: str | None,
    redactor: Redactor,
) -> dict[str, Any]:
    """The alert hooks' summary of a run from its final row: the keys (and meaning) of a single
    process's (``crawler.extensions.alerts.run_summary``)."""
    checks = row.get("checks")
    if isinstance(checks, str):
        checks = json.loads(checks)
    return summary_of(
        redactor,
        run_id=int(row["id"]),
        spider=row["spider"],
        job=after.job,
        arguments=row.get("arguments") or {},  # masked when the row was inserted
        started=row.get("started_at"),
        finished=row.get("finished_at"),
        finish_reason=row.get("finish_reason"),
        exit_status=int(row.get("exit_status") or 0),
        failures=failures,
        checks=checks,
        counts={
            name: int(row.get(name) or 0)
            for name in ("pages", "items", "rejects", "duplicates", "errors")
        },
        store=str(store.config.path),
        report=report,
        snapshot_dir=after.snapshot_dir,
    )


def merge_stats(stats: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The workers' stats as one run's: numbers summed (``_LARGEST`` keys: the largest), lists
    joined, dicts merged key by key the same way (nested: latency buckets, hosts, fetch kinds,
    field coverage), any other value the first worker's."""
    merged: dict[str, Any] = {}
    for values in stats:
        _merge_into(merged, values, largest=_LARGEST)
    return merged


def _merge_into(
    merged: dict[str, Any], values: Mapping[str, Any], *, largest: frozenset[str] = frozenset()
) -> None:
    for key, value in values.items():
        if key not in merged:
            merged[key] = _copy(value)
        elif isinstance(value, list) and isinstance(merged[key], list):
            merged[key] += _copy(value)
        elif isinstance(value, dict) and isinstance(merged[key], dict):
            _merge_into(merged[key], value)
        elif _number(value) and _number(merged[key]):
            merged[key] = max(merged[key], value) if key in largest else merged[key] + value


def _copy(value: Any) -> Any:
    """A worker's value, its lists and dicts copied: merging never changes the worker's."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def say(line: str) -> None:
    print(f"workers: {line}", file=sys.stderr, flush=True)


# looked up before any fork: the child may only call what is already resolved
_PRCTL = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """In a worker, before exec: SIGTERM (a clean stop) when the supervisor dies (Linux)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
