"""When a job is due for ``scrapy schedule --once`` (run by cron or a systemd timer).

* ``every = D``: due when the job never ran, or its last run started at least ``D`` ago (up to
  a tenth of ``D``, at most a minute, early: a timer with the same period never skips a turn).
* ``cron = E``: due when a fire time of ``E`` passed since the job was last looked at (the last
  ``--once`` or the last run start, from the state file); missed fire times coalesce into one
  run. A fire time more than ``misfire_grace`` ago is skipped (no limit when unset). The first
  time a job is looked at, fire times of the last minute (or ``misfire_grace``) count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from apscheduler.triggers.cron import CronTrigger

    from crawler.scheduling.job import Job
    from crawler.scheduling.state import State

EARLY_AT_MOST = timedelta(minutes=1)
FIRST_LOOK = timedelta(minutes=1)
_PROBES = (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=32))
_LAST_PROBE = timedelta(days=366 * 5)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Due:
    due: bool
    why: str


def latest_fire(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The last fire time of ``trigger`` at or before ``now``."""
    for span in (*_PROBES, _LAST_PROBE):
        fire: datetime | None = trigger.get_next_fire_time(None, now - span)
        if fire is not None and fire <= now:
            while (following := trigger.get_next_fire_time(None, fire + _TICK)) and (
                following <= now
            ):
                fire = following
            return fire
    return None


def next_run(job: Job, state: State, now: datetime) -> datetime | None:
    """When the job will next be due (``now`` if it is due already)."""
    if job.cron:
        upcoming: datetime | None = job.cron_trigger().get_next_fire_time(None, now)
        return upcoming
    assert job.every is not None
    if state.last_start is None:
        return now
    return max(now, state.last_start + job.every)


def is_due(job: Job, state: State, now: datetime) -> Due:
    if job.every is not None:
        if state.last_start is None:
            return Due(True, "never ran")
        early = min(EARLY_AT_MOST, job.every / 10)
        if now >= state.last_start + job.every - early:
            return Due(True, f"last run started {_ago(now - state.last_start)} ago")
        return Due(False, f"next run at {state.last_start + job.every:%Y-%m-%d %H:%M:%S %Z}")
    looked = [t for t in (state.last_check, state.last_start) if t is not None]
    since = max(looked) if looked else now - max(job.misfire_grace or FIRST_LOOK, FIRST_LOOK)
    fire = latest_fire(job.cron_trigger(), now)
    if fire is None or fire <= since:
        upcoming = job.cron_trigger().get_next_fire_time(None, now)
        return Due(False, f"next fire time {upcoming:%Y-%m-%d %H:%M:%S %Z}")
    if job.misfire_grace is not None and now - fire > job.misfire_grace:
        return Due(False, f"missed fire time {fire:%Y-%m-%d %H:%M:%S %Z} (beyond misfire_grace)")
    return Due(True, f"fire time {fire:%Y-%m-%d %H:%M:%S %Z}")


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
