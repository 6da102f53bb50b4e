"""What ``FrontierScheduler`` needs from the place its rows live: the interface of a backend.

The scheduler (``crawler.frontier.scheduler``) does what does not depend on the storage: the
fingerprints, JSON, which requests the engine has finished, retries, the timers. A backend
keeps the rows of one job: ``crawler.frontier.sqlitebackend`` in the SQLite store (the
default), a Redis backend for crawls on many machines. Row ids are the backend's own (an int in
SQLite, a string in Redis); rows are unique per fingerprint within the job.

A backend raises ``BackendError`` when a read or write fails (the scheduler counts the failure
and tries again later, and stops the crawl after several in a row), ``AlreadyRunning`` (from
``crawler.frontier.jobs``) when a live process already works on the job it would resume, and
``BackendUnusable`` when its data cannot be used at all (a foreign table, a corrupt key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from scrapy import Spider

    from crawler.frontier.jobs import JobChoice

RowId = int | str
QUEUED, LEASED, DONE, FAILED = "queued", "leased", "done", "failed"


class BackendError(Exception):
    """A read or write of the frontier failed; the message says why."""


class BackendUnusable(Exception):
    """The frontier's data cannot be used (not ours, corrupt); the message is one line."""


@dataclass(frozen=True)
class NewRequest:
    fingerprint: str
    url: str
    priority: int
    depth: int
    request: str  # JSON (crawler.frontier.codec)


@dataclass(frozen=True)
class LeasedRow:
    id: RowId
    fingerprint: str
    request: str | None
    attempts: int


@dataclass
class Batch:
    """What one flush writes, as one atomic unit: new requests (a fingerprint the job has is
    ignored), requests queued again (their row's data replaced, its attempts started over), rows
    finished (done, or failed with a reason), whether the job's start() is now seeded, and the
    (host, port) origins its seed requests named (the private targets a resumed crawl may reach),
    and the leased rows whose requests were sent (each counts an attempt: a row whose process
    dies ``FRONTIER_MAX_ATTEMPTS`` times while it is in flight is failed, not leased again)."""

    new: list[NewRequest] = field(default_factory=list)
    again: list[NewRequest] = field(default_factory=list)
    done: list[RowId] = field(default_factory=list)
    failed: list[tuple[RowId, str]] = field(default_factory=list)
    seeded: bool = False
    seeds: list[tuple[str, int]] = field(default_factory=list)  # origins seeds named
    started: list[RowId] = field(default_factory=list)  # leased rows whose requests were sent
    # new requests this process already took (served from memory): inserted leased by
    # ``owner`` until ``deadline``, before ``started``/``done``/``failed`` (which may name them
    # by fingerprint) apply
    leased_new: list[NewRequest] = field(default_factory=list)
    owner: str = ""
    deadline: float = 0.0

    def __bool__(self) -> bool:
        return any(
            (
                self.new,
                self.again,
                self.done,
                self.failed,
                self.seeded,
                self.seeds,
                self.started,
                self.leased_new,
            )
        )


class Backend(Protocol):
    @property
    def job_id(self) -> RowId | None:
        """The job, once ``open`` chose it."""

    @property
    def seeded(self) -> bool:
        """The job's start() has been read to its end and written."""

    def open(self, spider: Spider) -> JobChoice:
        """Choose the job (resume or new) or, for a worker of a run, join its job."""

    def find(self, fingerprint: str) -> str | None:
        """The state of the job's row with this fingerprint; None when the job never saw it."""

    def lease(
        self,
        owner: str,
        limit: int,
        deadline: float,
        max_attempts: int,
        before: Batch | None = None,
        share: tuple[int, int] | None = None,
    ) -> tuple[list[LeasedRow], int]:
        """Commit ``before`` (in the same transaction where the backend can), then lease up to
        ``limit`` queued rows (priority, then age) until ``deadline`` (unix seconds); rows already
        started ``max_attempts`` times are failed instead. With ``share`` ``(k, n)``, only rows
        of part k of n (a backend without parts may ignore it). Returns the rows and how many
        were failed."""

    def commit(self, batch: Batch) -> None:
        """Write ``batch`` atomically (see ``Batch``); only rows leased are finished."""

    def renew(self, owner: str, deadline: float) -> None:
        """Move the deadline of every lease ``owner`` holds."""

    def reclaim_expired(self, now: float) -> int:
        """Queue again the leases whose deadline passed; how many."""

    def release(self, owner: str, unstarted: list[RowId]) -> None:
        """At close: ``unstarted`` rows, and every other lease ``owner`` still holds, go back to
        the queue."""

    def has_work(self, owner: str) -> bool:
        """Whether the job has queued rows, or rows leased by another process."""

    def seeds(self) -> list[tuple[str, int]]:
        """The (host, port) origins the job's seed requests named so far."""

    def queued(self, cap: int) -> int:
        """How many rows are queued, counting no further than ``cap`` (a cheap estimate)."""

    def job_seeded(self) -> bool:
        """Read again whether the job is seeded (another worker may have finished seeding)."""

    def flush_items(self) -> bool:
        """Make the items produced so far durable, before requests are marked done; False when
        that failed (the requests stay leased)."""

    def close(self, reason: str, *, finished: bool, resumable: bool) -> dict[str, int]:
        """End this process's part: mark the job finished (``finished``: nothing is left), keep it
        open for a rerun (``resumable``) or close it; the rows by state."""
