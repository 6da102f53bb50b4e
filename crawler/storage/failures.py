"""SQL of the ``failed_pages`` table (migration 7) and of the snapshot link of ``rejects`` rows.

Written by ``crawler.extensions.snapshots`` in batches, read by ``scrapy export --failed RUN``
(the URLs to fetch again) and the run report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from crawler.storage.schema import transaction

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator, Sequence

_INSERT = (
    "INSERT INTO failed_pages (run_id, url, host, status, error, snapshot, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# the oldest unlinked reject of that URL in the run: two rejects of one page get one link each
_LINK_REJECT = (
    "UPDATE rejects SET snapshot = ? WHERE id = (SELECT id FROM rejects"
    " WHERE run_id = ? AND url = ? AND snapshot IS NULL ORDER BY id LIMIT 1)"
)


@dataclass(frozen=True)
class FailedPage:
    """A request that finally failed: HTTP >= 400 after retries, or an error without response."""

    url: str
    host: str | None
    status: int | None  # None: no response
    error: str  # "http_404", or the exception's class name ("TimeoutError")
    snapshot: str | None  # the snapshot's JSON file, relative to SNAPSHOT_DIR
    created_at: str


@dataclass(frozen=True)
class RejectLink:
    """The snapshot of the page whose item was rejected, for the reject row of ``url``."""

    url: str
    snapshot: str


def write_failures(
    conn: sqlite3.Connection,
    run_id: int,
    pages: Sequence[FailedPage],
    links: Sequence[RejectLink],
) -> list[RejectLink]:
    """Insert ``pages`` and link ``links`` in one transaction; the links whose reject row is not
    written yet (still in the store's batch) are returned, to be tried again later."""
    waiting: list[RejectLink] = []
    with transaction(conn):
        conn.executemany(
            _INSERT,
            [(run_id, p.url, p.host, p.status, p.error, p.snapshot, p.created_at) for p in pages],
        )
        for link in links:
            if conn.execute(_LINK_REJECT, (link.snapshot, run_id, link.url)).rowcount == 0:
                waiting.append(link)
    return waiting


def failed_urls(conn: sqlite3.Connection, run_id: int) -> Iterator[str]:
    """The distinct URLs that failed in ``run_id``, in the order they first failed.

    ``sqlite3.OperationalError`` when the store predates ``failed_pages`` (before migration 7).
    """
    rows = conn.execute(
        "SELECT url FROM failed_pages WHERE run_id = ? GROUP BY url ORDER BY min(id)", (run_id,)
    )
    for (url,) in rows:
        yield str(url)


def has_failed_pages_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'failed_pages'"
    ).fetchone()
    return row is not None
