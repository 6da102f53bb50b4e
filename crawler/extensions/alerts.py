"""``AlertHooks``: when a run ends (failed, or always), run a command and/or POST to a webhook.

Settings: ``ALERT_COMMAND`` (a command line, split with ``shlex`` and run without a shell),
``ALERT_WEBHOOK`` (an http(s) URL), ``ALERT_ON`` (``failure``: only runs whose exit status is not
0; ``always``), ``ALERT_TIMEOUT`` (seconds each hook may take). Off when neither hook is set, for
commands that record no run (``RUN_RECORD`` off: shell, fetch, check) and in the workers of a
``WORKERS`` run (only their parent knows the run's verdict).

Both hooks get the run summary (``run_summary``) as JSON, secrets masked as in the runs row:

* the command: the JSON on its stdin (UTF-8), and in its environment ``CRAWL_RUN_ID`` (empty
  without a run row) and ``CRAWL_EXIT_STATUS``; its output is not kept (the last line of its
  stderr is quoted when it fails). It runs in a session of its own: at the timeout its whole
  process group is killed.
* the webhook: a POST of the JSON with ``Content-Type: application/json`` (the timeout bounds
  the connection and each wait for the server); logged as scheme, host and port only (a token
  can be in the path or query).

The hooks run at close, after the run row is final (registered after the run recorder and the
report writer), one after the other in a thread of the reactor's pool. A hook that fails (not
found, non-zero exit, HTTP error, refused connection) or hangs is one WARNING line; it never
changes the crawl's exit status, its stats or its runs row. A bad ``ALERT_*`` value is one
ERROR line when the crawl starts, and the hooks are off.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import threads

from crawler import defaults
from crawler import stats as keys
from crawler.safety.secrets import Redactor, arguments_secrets, settings_secrets
from crawler.storage.schema import jsonable

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

ALERT_ON = ("failure", "always")
STDERR_QUOTED = 200  # characters of a failed command's last stderr line quoted in its warning


@dataclass(frozen=True)
class AlertConfig:
    command: tuple[str, ...] = ()
    webhook: str = ""
    on: str = defaults.ALERT_ON
    timeout: float = defaults.ALERT_TIMEOUT

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> AlertConfig:
        """The ``ALERT_*`` settings; ``ValueError`` with a one-line message when one is bad."""
        raw_command = settings.get("ALERT_COMMAND", defaults.ALERT_COMMAND) or ""
        try:
            command = (
                tuple(str(part) for part in raw_command)
                if isinstance(raw_command, list | tuple)
                else tuple(shlex.split(str(raw_command)))
            )
        except ValueError as exc:  # unbalanced quotes
            raise ValueError(f"ALERT_COMMAND: {exc}") from None
        webhook = str(settings.get("ALERT_WEBHOOK", defaults.ALERT_WEBHOOK) or "").strip()
        if webhook and urlsplit(webhook).scheme not in ("http", "https"):
            raise ValueError(f"ALERT_WEBHOOK must be an http or https URL, not {mask_url(webhook)}")
        on = str(settings.get("ALERT_ON", defaults.ALERT_ON) or defaults.ALERT_ON).strip().lower()
        if on not in ALERT_ON:
            raise ValueError(f"ALERT_ON must be one of {', '.join(ALERT_ON)}, not {on!r}")
        raw_timeout = settings.get("ALERT_TIMEOUT", defaults.ALERT_TIMEOUT)
        try:
            timeout = float(raw_timeout)
        except (TypeError, ValueError):
            timeout = float("nan")
        if not timeout > 0:
            raise ValueError(
                f"ALERT_TIMEOUT must be a number of seconds above 0, not {raw_timeout!r}"
            )
        return cls(command, webhook, on, timeout)

    def wanted(self, exit_status: int) -> bool:
        return self.on == "always" or exit_status != 0


def mask_url(url: str) -> str:
    """``url`` for a log line: scheme, host and port only (credentials, path and query can be
    the webhook's secret, e.g. a token in the path)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    if not parts.scheme or not host:
        return "***"
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


def run_summary(
    crawler: Crawler, spider: Spider, reason: str, redactor: Redactor
) -> dict[str, Any]:
    """What the hooks are told about the run, JSON-ready, secrets masked: run_id, spider, job,
    arguments, started, finished, finish_reason, exit_status, failures (the verdict's lines),
    checks (the failed checks across runs), counts, store, report and snapshots (paths)."""
    assert crawler.stats is not None
    stats = crawler.stats.get_stats()
    settings = crawler.settings
    verdict = keys.recorded_verdict(stats, reason)
    store = None
    if settings.getbool("SQLITE_ENABLED", defaults.SQLITE_ENABLED):
        store = str(settings.get("SQLITE_PATH", defaults.SQLITE_PATH))
    return summary_of(
        redactor,
        run_id=stats.get(keys.RUN_ID),
        spider=spider.name,
        job=settings.get("SCHEDULE_JOB") or None,
        arguments=redactor.mask("", getattr(spider, "arguments", {})),
        started=stats.get("start_time"),
        finished=stats.get("finish_time"),
        finish_reason=reason,
        exit_status=verdict.exit_status,
        failures=verdict.failures,
        checks=stats.get(keys.QUALITY_CHECKS),
        counts=keys.run_counts(stats).as_dict(),
        store=store,
        report=stats.get(keys.REPORT_PATH),
        snapshot_dir=settings.get("SNAPSHOT_DIR") or getattr(defaults, "SNAPSHOT_DIR", None),
    )


def summary_of(
    redactor: Redactor,
    *,
    run_id: int | None,
    spider: str,
    job: str | None,
    arguments: Any,
    started: Any,
    finished: Any,
    finish_reason: str | None,
    exit_status: int,
    failures: Sequence[str],
    checks: Sequence[Mapping[str, Any]] | None,
    counts: Mapping[str, int],
    store: str | None,
    report: str | None,
    snapshot_dir: str | None,
) -> dict[str, Any]:
    """The summary the hooks get, the same keys for one process (``run_summary``) and for the
    workers' supervisor (from the run row): the failed checks only, the store and the run's
    snapshot folder (when it exists) as absolute paths, secrets masked, JSON-ready."""
    snapshots = None
    if snapshot_dir and run_id is not None:
        folder = Path(str(snapshot_dir)) / f"run-{run_id}"
        snapshots = str(folder.absolute()) if folder.is_dir() else None
    summary = {
        "run_id": run_id,
        "spider": spider,
        "job": job,  # the schedule's job name, if any
        "arguments": arguments,
        "started": started,
        "finished": finished,
        "finish_reason": finish_reason,
        "exit_status": exit_status,
        "failures": list(failures),
        "checks": [c for c in checks or [] if not c.get("passed", True)],
        "counts": dict(counts),
        "store": str(Path(store).absolute()) if store else None,
        "report": report,
        "snapshots": snapshots,
    }
    return dict(redactor.redact_values(jsonable(summary)))


def run_command(command: tuple[str, ...], summary: Mapping[str, Any], timeout: float) -> None:
    """Run the alert command with the summary on its stdin; one WARNING line when it fails."""
    data = json.dumps(summary, ensure_ascii=False).encode("utf-8")
    env = dict(
        os.environ,
        CRAWL_RUN_ID="" if summary.get("run_id") is None else str(summary["run_id"]),
        CRAWL_EXIT_STATUS=str(summary.get("exit_status", "")),
    )
    name = command[0]
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: a stray child cannot hang us
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr,
                env=env, start_new_session=True,  # its own process group: killed as one
            )  # fmt: skip
        except OSError as exc:  # not found, not executable
            logger.warning(f"alert command {name!r} not run: {exc.strerror or exc}")
            return
        try:
            process.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            logger.warning(f"alert command {name!r} killed: still running after {timeout:g} s")
            return
        if process.returncode:
            stderr.seek(0)
            lines = stderr.read().decode("utf-8", "replace").strip().splitlines()
            said = f": {lines[-1].strip()[:STDERR_QUOTED]}" if lines else ""
            logger.warning(
                f"alert command {name!r} failed with exit status {process.returncode}{said}"
            )


def post_webhook(url: str, summary: Mapping[str, Any], timeout: float) -> None:
    """POST the summary as JSON to ``url``; one WARNING line (URL masked) when it fails."""
    data = json.dumps(summary, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    shown = mask_url(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        logger.warning(f"alert webhook {shown} failed: HTTP {exc.code} {exc.reason}")
    except urllib.error.URLError as exc:
        why = exc.reason.strerror if isinstance(exc.reason, OSError) else exc.reason
        logger.warning(f"alert webhook {shown} failed: {why or exc.reason}")
    except (OSError, ValueError) as exc:  # a timeout while reading, a bad URL
        text = str(exc).replace(url, shown) or type(exc).__name__
        logger.warning(f"alert webhook {shown} failed: {text}")


class AlertHooks:
    """Calls the alert hooks with the run summary when the spider closes (see the module)."""

    def __init__(self, crawler: Crawler, config: AlertConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.redactor = Redactor(())  # this crawl's secrets, known when the spider opens

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> AlertHooks:
        settings = crawler.settings
        if not settings.getbool("RUN_RECORD", defaults.RUN_RECORD):
            raise NotConfigured  # not a run (shell, fetch, check): nothing to alert about
        if settings.getint("WORKER_RUN_ID"):
            raise NotConfigured  # a WORKERS child: its parent judges the run (no warning line)
        try:
            config = AlertConfig.from_settings(settings)
        except ValueError as exc:
            logger.error(f"alert hooks off: {exc}")
            raise NotConfigured(str(exc)) from None
        if not config.command and not config.webhook:
            raise NotConfigured  # no hook set: the default, no warning line
        ext = cls(crawler, config)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Spider) -> None:
        arguments = getattr(spider, "arguments", {})
        secrets = settings_secrets(self.crawler.settings) | arguments_secrets(arguments)
        self.redactor = Redactor(secrets)

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        try:
            summary = run_summary(self.crawler, spider, reason, self.redactor)
            if not self.config.wanted(int(summary["exit_status"])):
                return
            # in a thread: the reactor keeps serving while a hook runs; Scrapy waits for it
            hooks = threads.deferToThread(call_hooks, self.config, summary)
            await maybe_deferred_to_future(hooks)
        except Exception as exc:  # a bug, not a hook's failure: still never fails the crawl
            logger.warning(f"alert hooks not called: {exc!r}")


def call_hooks(config: AlertConfig, summary: Mapping[str, Any]) -> None:
    """Both hooks, one after the other (each within ``config.timeout``), outside the reactor:
    also for a caller without one (the parent of a ``WORKERS`` run)."""
    if config.command:
        run_command(config.command, summary, config.timeout)
    if config.webhook:
        post_webhook(config.webhook, summary, config.timeout)
