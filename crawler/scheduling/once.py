"""``run_due``: ``scrapy schedule FILE --once``: run the jobs that are due now, then return.

"Due" is defined in ``crawler.scheduling.due``. The due jobs run at the same time, each in its own
process under its lock; SIGTERM/SIGINT stop them as in the daemon.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crawler.scheduling.due import is_due
from crawler.scheduling.state import JobState
from crawler.scheduling.stopping import StopSignals

if TYPE_CHECKING:
    from crawler.scheduling.job import Job
    from crawler.scheduling.runner import JobRunner, Outcome

logger = logging.getLogger(__name__)


def due_jobs(jobs: list[Job], runner: JobRunner, now: datetime) -> list[Job]:
    """The jobs due at ``now``; records that each one was looked at."""
    due: list[Job] = []
    for job in jobs:
        state = JobState(runner.log_dir / job.name)
        verdict = is_due(job, state.read(), now)
        state.update(last_check=now)
        logger.info(f"job {job.name}: {'due' if verdict.due else 'not due'} ({verdict.why})")
        if verdict.due:
            due.append(job)
    return due


def run_due(jobs: list[Job], runner: JobRunner) -> list[Outcome]:
    """Run every due job once, concurrently; the outcomes, in the order of ``jobs``."""
    due = due_jobs(jobs, runner, datetime.now(UTC))
    if not due:
        logger.info("no job is due")
        return []
    outcomes: dict[str, Outcome] = {}

    def work(job: Job) -> None:
        outcomes[job.name] = runner.run(job)

    threads = [threading.Thread(target=work, args=(job,), name=job.name) for job in due]
    with StopSignals(runner) as stop:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
                if stop.event.is_set() and not runner.stopping:
                    logger.info("stopping: asking the running crawls to stop")
                    runner.stop()
                    threading.Thread(target=runner.wait_stopped, daemon=True).start()
    return [outcomes[job.name] for job in due if job.name in outcomes]
