"""``SQLiteBackend``: the frontier's rows in the crawl's SQLite store (``FRONTIER = "sqlite"``).

It shares the crawl's ``Store`` (one connection, held from ``open`` to ``close``); its SQL is in
``crawler.storage.frontier``. ``flush_items`` commits the store's buffered items, so a request
is marked done only after them. A single crawl chooses its job (``crawler.frontier.jobs``:
resume or new); a worker of a ``WORKERS`` run joins the job its run row names and takes back
the leases its previous process (same run and worker index) left.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crawler.frontier.backend import BackendError, BackendUnusable
from crawler.frontier.jobs import JobChoice, choose_job, job_arguments, job_key
from crawler.storage import frontier as sql
from crawler.storage import open_for_crawl
from crawler.storage.liveness import this_host
from crawler.storage.schema import transaction

if TYPE_CHECKING:
    from collections.abc import Iterator

    from scrapy import Spider
    from scrapy.crawler import Crawler

    from crawler.frontier.backend import Batch, LeasedRow, RowId
    from crawler.frontier.scheduler import FrontierConfig
    from crawler.storage import Store


class SQLiteBackend:
    def __init__(self, crawler: Crawler, store: Store, config: FrontierConfig) -> None:
        self.crawler = crawler
        self.store = store
        self.config = config
        self.job_id: int | None = None
        self.seeded = False
        self._held = False

    @contextmanager
    def _errors(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self.store.conn
        except sqlite3.Error as exc:
            raise BackendError(str(exc)) from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._errors() as conn, transaction(conn):
            yield conn

    # --- open and close ---------------------------------------------------------------------
    def open(self, spider: Spider) -> JobChoice:
        self.store.hold()
        self._held = True
        open_for_crawl(self.store)  # CloseSpider(store_error) when it cannot open
        conn = self.store.conn
        try:
            sql.check_table(conn)
            choice = self._join(conn) if self.config.run_id is not None else self._choose(spider)
        except sqlite3.Error as exc:
            raise BackendUnusable(f"{self.store.path}: {exc}") from None
        self.job_id = choice.job_id
        row = sql.job(conn, choice.job_id)
        self.seeded = bool(row and row["seeded_at"])
        return choice

    def _choose(self, spider: Spider) -> JobChoice:
        arguments = job_arguments(spider, self.crawler.settings)
        return choose_job(
            self.store.conn,
            spider=spider.name,
            key=job_key(spider.name, arguments),
            fresh=self.config.fresh,
            max_age_seconds=self.config.max_age_seconds,
            now=datetime.now(UTC),
            stale_seconds=self.config.stale_seconds,
            host=this_host(),
        )

    def _join(self, conn: sqlite3.Connection) -> JobChoice:
        run_id, worker = self.config.run_id, self.config.worker
        row = conn.execute("SELECT job_id FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None or row[0] is None:
            raise sqlite3.DatabaseError(f"run {run_id} has no frontier job (WORKER_RUN_ID)")
        job_id = int(row[0])
        with transaction(conn):  # the leases of this worker's previous process, if it died
            sql.reclaim(conn, job_id, owner_prefix=f"{run_id}:{worker}:")
        return JobChoice(job_id, resumed=True)

    def close(self, reason: str, *, finished: bool, resumable: bool) -> dict[str, int]:
        try:
            if self.job_id is None or not self.store.is_open:
                return {}
            now = datetime.now(UTC).isoformat()
            with self._write() as conn:
                if finished:
                    sql.set_job_state(conn, self.job_id, sql.FINISHED, now)
                elif not resumable:
                    sql.set_job_state(conn, self.job_id, sql.CLOSED, now)
            with self._errors() as conn:
                return sql.counts(conn, self.job_id)
        finally:
            if self._held:
                self._held = False
                self.store.release()

    # --- rows -------------------------------------------------------------------------------
    def find(self, fingerprint: str) -> str | None:
        assert self.job_id is not None
        with self._errors() as conn:
            found = sql.find(conn, self.job_id, fingerprint)
        return found[1] if found else None

    def lease(
        self,
        owner: str,
        limit: int,
        deadline: float,
        max_attempts: int,
        before: Batch | None = None,
        share: tuple[int, int] | None = None,
    ) -> tuple[list[LeasedRow], int]:
        assert self.job_id is not None
        with self._write() as conn:
            if before:
                self._commit(conn, before)
            leased = sql.lease(
                conn,
                self.job_id,
                owner=owner,
                limit=limit,
                deadline=deadline,
                max_attempts=max_attempts,
                share=share,
            )
        self.seeded = self.seeded or bool(before and before.seeded)
        return leased

    def commit(self, batch: Batch) -> None:
        with self._write() as conn:
            self._commit(conn, batch)
        self.seeded = self.seeded or batch.seeded

    def _commit(self, conn: sqlite3.Connection, batch: Batch) -> None:
        assert self.job_id is not None
        sql.insert(conn, self.job_id, batch.new)
        if batch.leased_new:
            sql.insert_leased(conn, self.job_id, batch.leased_new, batch.owner, batch.deadline)
        sql.requeue(conn, self.job_id, batch.again)
        sql.started(conn, self.job_id, batch.started)
        sql.finish(conn, self.job_id, batch.done, batch.failed)
        if batch.seeds:
            sql.add_seeds(conn, self.job_id, batch.seeds)
        if batch.seeded:
            sql.mark_seeded(conn, self.job_id, datetime.now(UTC).isoformat())

    def renew(self, owner: str, deadline: float) -> None:
        assert self.job_id is not None
        with self._write() as conn:
            sql.renew(conn, self.job_id, owner, deadline)

    def reclaim_expired(self, now: float) -> int:
        assert self.job_id is not None
        with self._write() as conn:
            return sql.reclaim(conn, self.job_id, now=now)

    def release(self, owner: str, unstarted: list[RowId]) -> None:
        assert self.job_id is not None
        with self._write() as conn:
            sql.give_back(conn, self.job_id, unstarted)
            sql.reclaim(conn, self.job_id, owner_prefix=owner)

    def has_work(self, owner: str) -> bool:
        assert self.job_id is not None
        with self._errors() as conn:
            return sql.has_work(conn, self.job_id, owner)

    def seeds(self) -> list[tuple[str, int]]:
        assert self.job_id is not None
        with self._errors() as conn:
            return sql.seeds(conn, self.job_id)

    def queued(self, cap: int) -> int:
        assert self.job_id is not None
        with self._errors() as conn:
            return sql.queued(conn, self.job_id, cap)

    def job_seeded(self) -> bool:
        assert self.job_id is not None
        with self._errors() as conn:
            row = sql.job(conn, self.job_id)
        self.seeded = bool(row and row["seeded_at"])
        return self.seeded

    def flush_items(self) -> bool:
        if not (self.store.pending_items or self.store.pending_rejects):
            return True
        return self.store.flush()
