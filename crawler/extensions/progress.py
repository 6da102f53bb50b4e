"""Live progress while a crawl runs, and a short summary when it ends.

On a terminal: one line redrawn every ``PROGRESS_TTY_INTERVAL`` seconds (pages, items, errors,
pages/s, queue, elapsed time), drawn with rich's ``Live`` below the log: while it runs, log records
are printed above it instead of running into it. Otherwise: a plain log line every
``PROGRESS_LOG_INTERVAL`` seconds. At the end, always: pages, items, rejects, duplicates, errors,
elapsed time, and where the data went.

When the crawl knows its total (stats ``PROGRESS_TOTAL`` with ``PROGRESS_TOTAL_KNOWN``: a URL
list, a site's sitemaps, a resumed frontier that does not follow links), the terminal also shows
a bar (percent, done/total, ETA) and the log line ends with ``| done/total (percent) | eta``.
The ETA is the requests left over the rate of the last ``RATE_WINDOW`` seconds, so it follows
a crawl that slows down. A crawl that follows links has no total: no bar, no ETA, the queue.

``PROGRESS_STATUS_FILE`` (``--status-file``): the same figures as JSON, replaced atomically every
``PROGRESS_STATUS_INTERVAL`` seconds and once at close (``state`` "closed", the finish reason and
the exit status); a path that cannot be written is one warning, never a failed crawl.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, TaskProgressColumn, TextColumn
from rich.progress import Progress as RichProgress
from rich.text import Text
from scrapy import signals
from scrapy.exceptions import NotConfigured
from twisted.internet import task

from crawler import defaults
from crawler import stats as keys
from crawler.atomicfile import create_part, part_path

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping

    from rich.console import RenderableType
    from scrapy.core.engine import ExecutionEngine
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

RATE_WINDOW = 30.0  # seconds of recent progress the rates and the ETA are measured over
STATUS_VERSION = 1  # of the status file's fields


@dataclass(frozen=True)
class ProgressConfig:
    tty_interval: float
    log_interval: float
    status_file: Path | None = None
    status_interval: float = defaults.PROGRESS_STATUS_INTERVAL
    worker: int | None = None  # WORKER_INDEX of a WORKERS run: its totals are not this process's

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> ProgressConfig:
        if not settings.getbool("PROGRESS_ENABLED"):
            raise NotConfigured("PROGRESS_ENABLED is off")
        worker = settings.getint("WORKER_INDEX") if settings.getint("WORKER_COUNT", 1) > 1 else None
        path = str(settings.get("PROGRESS_STATUS_FILE", defaults.PROGRESS_STATUS_FILE) or "")
        status_file = Path(path).expanduser() if path.strip() else None
        if status_file is not None and worker is not None:  # one file per worker process
            status_file = status_file.with_name(f"{status_file.stem}-w{worker}{status_file.suffix}")
        return cls(
            tty_interval=max(0.1, settings.getfloat("PROGRESS_TTY_INTERVAL")),
            log_interval=max(1.0, settings.getfloat("PROGRESS_LOG_INTERVAL")),
            status_file=status_file,
            status_interval=max(
                0.1,
                settings.getfloat("PROGRESS_STATUS_INTERVAL", defaults.PROGRESS_STATUS_INTERVAL),
            ),
            worker=worker,
        )


class RecentRate:
    """Pages/s and requests done/s over the last ``window`` seconds of samples."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self.samples: deque[tuple[float, int, int]] = deque()  # (time, pages, done)

    def add(self, now: float, pages: int, done: int) -> None:
        self.samples.append((now, pages, done))
        # keep one sample at or before the window's start: the rate spans the whole window
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window:
            self.samples.popleft()

    def per_second(self) -> tuple[float, float]:
        (t0, pages0, done0), (t1, pages1, done1) = self.samples[0], self.samples[-1]
        if t1 - t0 <= 0:
            return 0.0, 0.0
        return (pages1 - pages0) / (t1 - t0), (done1 - done0) / (t1 - t0)


@dataclass(frozen=True)
class Figures:
    """What the progress display, the log line and the status file show."""

    elapsed: float
    pages: int
    items: int
    errors: int
    rejects: int
    queue: int
    in_flight: int
    pages_per_second: float
    done: int  # requests finished, earlier runs of a resumed frontier included
    total: int | None  # None: not known (no bar, no ETA)
    percent: float | None
    eta_seconds: float | None  # None: no total, or nothing finished in the recent window


def requests_done(stats: Mapping[str, Any]) -> int:
    """Requests that ended: a response (an HTTP error's included; retries and redirects are not
    responses), an error without one, a 304 or a ``min_age`` skip, and a resumed frontier's."""
    responses = stats.get(keys.RESPONSES, stats.get("response_received_count", 0))
    parts = (keys.PROGRESS_ENDED, *keys.KEPT_CURRENT, keys.PROGRESS_DONE_BEFORE)
    return int(responses or 0) + sum(int(stats.get(key) or 0) for key in parts)


def known_total(stats: Mapping[str, Any]) -> int | None:
    if not stats.get(keys.PROGRESS_TOTAL_KNOWN) or stats.get(keys.PROGRESS_TOTAL) is None:
        return None
    return int(stats[keys.PROGRESS_TOTAL])


class Progress:
    """Shows crawl progress (live on a terminal, as log lines otherwise), writes the status
    file, and prints a final summary."""

    def __init__(
        self,
        crawler: Crawler,
        config: ProgressConfig,
        stream: TextIO,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.crawler = crawler
        self.config = config
        self.stream = stream
        self.clock = clock
        self.live = stream.isatty()
        self.started = clock()
        self.started_at = datetime.now(UTC)
        self.rate = RecentRate()
        self.loop: task.LoopingCall | None = None
        self.status_loop: task.LoopingCall | None = None
        self.display: Live | None = None
        self.bar: RichProgress | None = None
        self.redirected: list[logging.StreamHandler[Any]] = []
        self.status_warned = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Progress:
        ext = cls(crawler, ProgressConfig.from_settings(crawler.settings), sys.stderr)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self) -> None:
        self.started = self.clock()
        self.started_at = datetime.now(UTC)
        self.rate = RecentRate()
        self.figures()  # the first sample: requests a resumed frontier did before
        if self.live:
            self._start_display()
        self.loop = task.LoopingCall(self.show)
        interval = self.config.tty_interval if self.live else self.config.log_interval
        self.loop.start(interval, now=False)
        if self.config.status_file is not None:
            self.status_loop = task.LoopingCall(self.write_status)
            self.status_loop.start(self.config.status_interval, now=True)

    def _start_display(self) -> None:
        """Start the live line; log handlers writing to the terminal now print above it."""
        console = Console(file=self.stream, highlight=False)
        self.display = Live(
            Text(""), console=console, auto_refresh=False, transient=True,
            redirect_stdout=False, redirect_stderr=self.stream is sys.stderr,
        )  # fmt: skip
        original = sys.stderr
        self.display.start()
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is original:
                handler.setStream(console.file if sys.stderr is original else sys.stderr)
                self.redirected.append(handler)

    def _stop_display(self) -> None:
        if self.display is None:
            return
        self.display.stop()  # restores sys.stderr
        for handler in self.redirected:
            handler.setStream(sys.stderr)
        self.redirected.clear()
        self.display = None

    def figures(self) -> Figures:
        """The figures now; each call is a sample of the recent rate."""
        values = self._values()
        counts = keys.run_counts(values)
        now = self.clock()
        elapsed = max(now - self.started, 0.0)
        done = requests_done(values)
        self.rate.add(now, counts.pages, done)
        pages_rate, done_rate = self.rate.per_second()
        engine: ExecutionEngine | None = _late(self.crawler, "engine")
        queued = len(engine.scheduler) if engine and engine.scheduler is not None else 0  # type: ignore[arg-type]
        active = len(engine.downloader.active) if engine else 0
        total = None if self.config.worker is not None else known_total(values)
        percent = eta = None
        if total is not None:
            # at least once: a request fetched again (a resumed frontier) ends twice
            done = min(done, total)
            left = total - done
            percent = 100.0 * done / total if total else 100.0
            eta = 0.0 if left <= 0 else (left / done_rate if done_rate > 0 else None)
        return Figures(
            elapsed=elapsed, pages=counts.pages, items=counts.items, errors=counts.errors,
            rejects=counts.rejects, queue=queued, in_flight=active,
            pages_per_second=pages_rate, done=done, total=total, percent=percent,
            eta_seconds=eta,
        )  # fmt: skip

    def line(self, figures: Figures | None = None, *, totals: bool = True) -> str:
        """The figures in one line; ``totals``: with done/total and the ETA, when known."""
        f = figures or self.figures()
        text = (
            f"pages {f.pages:,} | items {f.items:,} | rejects {f.rejects:,} | "
            f"errors {f.errors:,} | {f.pages_per_second:,.1f} pages/s | "
            f"queue {f.queue:,} | in flight {f.in_flight:,} | {_clock(f.elapsed)} elapsed"
        )
        if totals and f.total is not None and f.percent is not None:
            text += f" | {f.done:,}/{f.total:,} ({f.percent:.0f}%) | eta {_eta(f.eta_seconds)}"
        return text

    def _values(self) -> dict[str, Any]:
        assert self.crawler.stats is not None
        return self.crawler.stats.get_stats()

    def show(self) -> None:
        figures = self.figures()
        if self.display is not None:
            # under a bar, the line leaves done/total and the ETA to it
            line = Text(self.line(figures, totals=False), no_wrap=True, overflow="ellipsis")
            self.display.update(self._with_bar(figures, line), refresh=True)
        else:
            logger.info(f"progress: {self.line(figures)}")

    def _with_bar(self, figures: Figures, line: Text) -> RenderableType:
        """The live line, under a bar when the total is known."""
        if figures.total is None:
            return line
        if self.bar is None:  # rendered inside our Live, never started on its own
            self.bar = RichProgress(
                BarColumn(bar_width=40), TaskProgressColumn(),
                TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[rate]}"),
                TextColumn("eta {task.fields[eta]}"), auto_refresh=False,
            )  # fmt: skip
            self.bar.add_task("crawl", total=figures.total, counts="", rate="", eta="")
        self.bar.update(
            self.bar.task_ids[0],
            total=figures.total,
            completed=figures.done,
            counts=f"{figures.done:,}/{figures.total:,}",
            rate=f"{figures.pages_per_second:,.1f} pages/s",
            eta=_eta(figures.eta_seconds),
        )
        return Group(self.bar, line)

    def write_status(self, reason: str | None = None) -> None:
        """Replace the status file with the figures now (``reason``: the crawl closed)."""
        path = self.config.status_file
        if path is None:
            return
        values = self._values()
        closed = reason is not None
        status = {
            "version": STATUS_VERSION,
            "state": "closed" if closed else "running",
            "spider": getattr(_late(self.crawler, "spider"), "name", None),
            "run_id": values.get(keys.RUN_ID),
            "worker": self.config.worker,
            "pid": os.getpid(),
            "started_at": _iso(self.started_at),
            "updated_at": _iso(datetime.now(UTC)),
            **asdict(self.figures()),
            "finish_reason": reason,
            "exit_status": None,
        }
        if reason is not None:  # the health monitor (50) has judged the run before us (200)
            status["exit_status"] = keys.recorded_verdict(values, reason).exit_status
        for key in ("elapsed", "pages_per_second", "percent", "eta_seconds"):
            if status[key] is not None:
                status[key] = round(status[key], 2)
        try:
            replace_file(path, json.dumps(status, indent=1) + "\n")
        except OSError as exc:
            if not self.status_warned:
                self.status_warned = True
                logger.warning(f"status file {path} not written: {exc.strerror or exc}")

    def spider_closed(self, reason: str) -> None:
        for loop in (self.loop, self.status_loop):
            if loop is not None and loop.running:
                loop.stop()
        self._stop_display()
        self.write_status(reason)
        values = self._values()
        counts = keys.run_counts(values)
        elapsed = self.clock() - self.started
        lines = [
            f"Crawl {reason} in {elapsed:.1f} s: {counts.pages:,} pages, {counts.items:,} items,"
            f" {counts.rejects:,} rejects, {counts.duplicates:,} duplicates,"
            f" {counts.errors:,} errors",
        ]
        if recrawl := _recrawl_line(values):
            lines.append(recrawl)
        if values.get(keys.RUN_ID) is not None:
            store = self.crawler.settings.get("SQLITE_PATH")
            lines.append(f"  store: {store} (run {values[keys.RUN_ID]})")
        lines.extend(f"  csv:   {_shown(path)}" for path in values.get("csv/paths", []))
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()


def add_status_file_option(parser: argparse.ArgumentParser) -> None:
    """``--status-file PATH`` of ``scrapy crawl`` and ``scrapy runspider``."""
    parser.add_argument(
        "--status-file",
        metavar="PATH",
        help="write the live progress as JSON to PATH (replaced atomically every"
        " PROGRESS_STATUS_INTERVAL seconds and at the end); -s PROGRESS_STATUS_FILE=PATH",
    )


def status_file_setting(opts: argparse.Namespace) -> None:
    """``--status-file PATH`` as ``-s PROGRESS_STATUS_FILE=PATH``: set at the command line's
    priority, and repeated by the workers of ``WORKERS=N`` as every ``-s`` is."""
    if getattr(opts, "status_file", None):
        opts.set = [*(opts.set or []), f"PROGRESS_STATUS_FILE={opts.status_file}"]


def replace_file(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a part file beside it, renamed over it. No fsync: a
    live status that a crash leaves one update behind is still a whole one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(path)
    try:
        with create_part(part, "x", encoding="utf-8") as handle:
            handle.write(text)
        part.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            part.unlink()
        raise


_RECRAWL = (
    (keys.NOT_MODIFIED, "not modified (304)"),
    (keys.UNCHANGED, "unchanged"),
    (keys.CHANGED, "changed"),
    (keys.NEW, "new"),
    (keys.SKIPPED_RECENT, "skipped (min_age)"),
)


def _recrawl_line(values: dict[str, Any]) -> str | None:
    """What an incremental recrawl found, when it found anything known before."""
    if not any(values.get(key) for key, _ in _RECRAWL if key != keys.NEW):
        return None  # a first crawl: every page is new, the line would say nothing
    return "  recrawl: " + ", ".join(f"{values.get(key, 0):,} {what}" for key, what in _RECRAWL)


def _late(crawler: Crawler, name: str) -> Any:
    """``crawler.engine`` / ``crawler.spider``, or None before the crawl sets them."""
    try:
        return getattr(crawler, name)
    except RuntimeError:  # Scrapy 2.19: "Crawler.engine is not set yet"
        return None


def _clock(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _eta(seconds: float | None) -> str:
    """The ETA as ``H:MM:SS``, ``--`` while no rate is known."""
    return "--" if seconds is None else _clock(round(seconds))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it is under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
