"""``ScheduleDaemon``: the foreground scheduler of ``scrapy schedule FILE``.

APScheduler (3.x) decides when each job fires: ``CronTrigger.from_crontab`` or an
``IntervalTrigger``, missed fire times coalesced into one run, ``misfire_grace`` as its
``misfire_grace_time``. Each run goes through ``JobRunner`` (its own process, under the job's
lock). SIGTERM or SIGINT: no new runs; running crawls get SIGINT and ``SCHEDULE_STOP_TIMEOUT``
seconds to finish, then they are killed. A second signal kills them at once.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from crawler.scheduling.state import JobState
from crawler.scheduling.stopping import StopSignals

if TYPE_CHECKING:
    from crawler.scheduling.job import Job
    from crawler.scheduling.runner import JobRunner

logger = logging.getLogger(__name__)

MAX_INSTANCES = 3  # a job firing during its own run reaches the lock, which refuses and counts


class ScheduleDaemon:
    def __init__(self, jobs: list[Job], runner: JobRunner) -> None:
        self.jobs = jobs
        self.runner = runner

    def run(self) -> None:
        """Schedule every job and block until SIGTERM/SIGINT; then stop cleanly."""
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=MAX_INSTANCES * len(self.jobs))},
            job_defaults={"coalesce": True, "max_instances": MAX_INSTANCES},
        )
        now = datetime.now(UTC)
        for job in self.jobs:
            last_start = JobState(self.runner.log_dir / job.name).read().last_start
            grace = job.misfire_grace.total_seconds() if job.misfire_grace else None
            scheduler.add_job(
                self.runner.run,
                trigger=job.trigger(last_start, now),
                args=[job],
                id=job.name,
                name=job.name,
                misfire_grace_time=grace,
            )
        with StopSignals(self.runner) as stop:
            scheduler.start()
            for entry in scheduler.get_jobs():
                when = f"{entry.next_run_time:%Y-%m-%d %H:%M:%S %Z}"
                logger.info(f"job {entry.id}: next run at {when}")
            while not stop.event.wait(1.0):
                pass
            logger.info("stopping: no new runs")
            self.runner.stop()
            threading.Thread(target=self.runner.wait_stopped, daemon=True).start()
            scheduler.shutdown(wait=True)  # the job threads return once their crawls ended
        logger.info("scheduler stopped")
