"""Live progress while a crawl runs, and a short summary when it ends.

On a terminal: one line redrawn every ``PROGRESS_TTY_INTERVAL`` seconds (pages, items, errors,
pages/s, queue, elapsed time), drawn with rich's ``Live`` below the log: while it runs, log records
are printed above it instead of running into it. Otherwise: a plain log line every
``PROGRESS_LOG_INTERVAL`` seconds. At the end, always: pages, items, rejects, duplicates, errors,
elapsed time, and where the data went.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text
from scrapy import signals
from scrapy.exceptions import NotConfigured
from twisted.internet import task

from crawler import stats as keys

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressConfig:
    tty_interval: float
    log_interval: float

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> ProgressConfig:
        if not settings.getbool("PROGRESS_ENABLED"):
            raise NotConfigured("PROGRESS_ENABLED is off")
        return cls(
            tty_interval=max(0.1, settings.getfloat("PROGRESS_TTY_INTERVAL")),
            log_interval=max(1.0, settings.getfloat("PROGRESS_LOG_INTERVAL")),
        )


class Progress:
    """Shows crawl progress (live on a terminal, as log lines otherwise) and a final summary."""

    def __init__(self, crawler: Crawler, config: ProgressConfig, stream: TextIO) -> None:
        self.crawler = crawler
        self.config = config
        self.stream = stream
        self.live = stream.isatty()
        self.started = time.monotonic()
        self.loop: task.LoopingCall | None = None
        self.display: Live | None = None
        self.redirected: list[logging.StreamHandler[Any]] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Progress:
        ext = cls(crawler, ProgressConfig.from_settings(crawler.settings), sys.stderr)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self) -> None:
        self.started = time.monotonic()
        if self.live:
            self._start_display()
        self.loop = task.LoopingCall(self.show)
        interval = self.config.tty_interval if self.live else self.config.log_interval
        self.loop.start(interval, now=False)

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

    def line(self) -> str:
        values = self._values()
        counts = keys.run_counts(values)
        elapsed = max(time.monotonic() - self.started, 1e-6)
        engine = self.crawler.engine
        queued = len(engine.scheduler) if engine and engine.scheduler is not None else 0  # type: ignore[arg-type]
        active = len(engine.downloader.active) if engine else 0
        return (
            f"pages {counts.pages:,} | items {counts.items:,} | rejects {counts.rejects:,} | "
            f"errors {counts.errors:,} | {counts.pages / elapsed:,.1f} pages/s | "
            f"queue {queued:,} | in flight {active:,} | {_clock(elapsed)} elapsed"
        )

    def _values(self) -> dict[str, Any]:
        assert self.crawler.stats is not None
        return self.crawler.stats.get_stats()

    def show(self) -> None:
        if self.display is not None:
            self.display.update(Text(self.line(), no_wrap=True, overflow="ellipsis"), refresh=True)
        else:
            logger.info(f"progress: {self.line()}")

    def spider_closed(self, reason: str) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self._stop_display()
        values = self._values()
        counts = keys.run_counts(values)
        elapsed = time.monotonic() - self.started
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


def _clock(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it is under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
