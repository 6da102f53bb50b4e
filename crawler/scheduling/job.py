"""``Job``: one entry of a schedule file: what to crawl, when, and its limits."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from crawler.durations import describe

if TYPE_CHECKING:
    from datetime import tzinfo

    from apscheduler.triggers.base import BaseTrigger

JOB_SETTING = "SCHEDULE_JOB"  # passed to every crawl: the job's name, recorded in the runs row


@dataclass(frozen=True)
class Job:
    name: str
    spider: str
    timezone: tzinfo
    cron: str | None = None
    every: timedelta | None = None
    arguments: dict[str, list[str]] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    misfire_grace: timedelta | None = None  # None: a late run always starts (once)
    max_runtime: timedelta | None = None

    @property
    def when(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {describe(self.every or timedelta())}"

    def cron_trigger(self) -> CronTrigger:
        assert self.cron is not None
        return CronTrigger.from_crontab(self.cron, timezone=self.timezone)

    def trigger(self, last_start: datetime | None, now: datetime) -> BaseTrigger:
        """The APScheduler trigger; an interval job first fires once ``every`` has passed."""
        if self.cron:
            return self.cron_trigger()
        assert self.every is not None
        first = now + timedelta(seconds=0.1)
        if last_start is not None:
            first = max(first, last_start + self.every)
        return IntervalTrigger(seconds=self.every.total_seconds(), start_date=first)

    def command(self, base_settings: dict[str, str]) -> list[str]:
        """The ``scrapy crawl`` command line of one run (settings: base, then the job's)."""
        argv = [sys.executable, "-m", "scrapy", "crawl", self.spider]
        for name, values in self.arguments.items():
            argv += [part for value in values for part in ("-a", f"{name}={value}")]
        settings = {**base_settings, **self.settings, JOB_SETTING: self.name}
        for name, value in settings.items():
            argv += ["-s", f"{name}={value}"]
        return argv
