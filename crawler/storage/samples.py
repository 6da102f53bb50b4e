"""SQL of the ``run_samples`` table: what a crawl process looked like every ``SAMPLE_INTERVAL``.

Each row holds the process's figures so far (pages, items, errors, rejects, response body bytes,
pages rendered in the browser) and two gauges at that moment (requests in flight, requests
queued); ``elapsed`` is seconds since the spider opened. Written by
``crawler.extensions.sampler.RunSampler``; the run report draws its time series from them.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from typing import TYPE_CHECKING

from crawler.storage.schema import transaction

if TYPE_CHECKING:
    import sqlite3


@dataclass(frozen=True)
class Sample:
    elapsed: float
    pages: int = 0
    items: int = 0
    errors: int = 0
    rejects: int = 0
    bytes: int = 0
    rendered: int = 0
    in_flight: int = 0
    queued: int = 0


_COLUMNS = ", ".join(f.name for f in fields(Sample))
_INSERT = (
    f"INSERT INTO run_samples (run_id, worker, at, {_COLUMNS})"
    f" VALUES (?, ?, ?, {', '.join('?' * len(fields(Sample)))})"
)


def add_sample(conn: sqlite3.Connection, run_id: int, worker: int, at: str, sample: Sample) -> None:
    """One row, in a transaction of its own."""
    with transaction(conn):
        conn.execute(_INSERT, (run_id, worker, at, *astuple(sample)))
