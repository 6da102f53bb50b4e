"""``ErrorSnapshots``: every page that failed in a ``failed_pages`` row, and a copy of it on disk.

A page failed when its final response (after retries and redirects: ``response_received`` sees
only those) has a status of 400 or more, or when its request ended in an error without a
response (the spiders' ``fetch_failed`` signal, sent where ``FETCH_ERRORS`` is counted). Requests
the crawl chose not to make are no failures (robots.txt Disallow, offsite, a blocked target, a
recrawl's skip); one refused because its host's robots.txt is unreachable is. Each failure is a
``failed_pages`` row of the run (written in one transaction per ``SQLITE_BATCH_SIZE`` rows or
``SQLITE_BATCH_SECONDS``, and at close), which ``scrapy export --failed RUN`` reads.

Within the caps, a snapshot is kept in ``<SNAPSHOT_DIR>/run-<id>/`` (``run-<UTC time>-<pid>``
without a run row): ``NNNN-<kind>.json`` (URL, status, request and response headers with secrets
masked by ``crawler.safety.secrets``, the error, the time) and the body, ``NNNN-<kind>.html|.bin``,
cut at ``SNAPSHOT_BODY_BYTES`` (``"truncated": true``). The page of a rejected item
(``RejectItem``) is kept the same way and linked from its ``rejects`` row (``snapshot``, matched by
the item's url). Each file is written to a hidden part file and renamed: a name never holds a
half-written file, and the JSON is written after the body it names.

Settings: ``SNAPSHOTS_ENABLED`` (off: no files; the rows are still written), ``SNAPSHOT_DIR``,
``SNAPSHOT_MAX_COUNT`` and ``SNAPSHOT_MAX_BYTES`` (per run and process: past them a snapshot is
counted in ``snapshots/skipped``), ``SNAPSHOT_BODY_BYTES``. Loaded with ``RUN_RECORD``
(``scrapy crawl``, ``scrapy runspider``).

A failed page rendered by the browser comes with a PNG screenshot of its viewport (taken by
``crawler.rendering.handler`` before the browser page is released, ``SNAPSHOT_SCREENSHOTS``):
``NNNN-<kind>.png``, named in the JSON (``"screenshot"``) and counted in ``SNAPSHOT_MAX_BYTES``
(past it the snapshot is kept without it). Its bytes are taken off the request meta as soon as
the response is downloaded (a retry's copy of the request carries none) and dropped once
written. A rejected item's page has none: its browser page was reused long before the item
was validated.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.http import Response

from crawler import defaults
from crawler import stats as keys
from crawler.atomicfile import create_part, discard, part_path, publish
from crawler.exceptions import RejectItem
from crawler.meta import SCREENSHOT, is_own_request
from crawler.safety.secrets import MASK, Redactor, arguments_secrets, settings_secrets
from crawler.signals import deliberate, error_name, fetch_failed
from crawler.storage import StoreError, store_for
from crawler.storage.failures import FailedPage, RejectLink, write_failures

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http.headers import Headers
    from scrapy.settings import BaseSettings
    from scrapy.statscollectors import StatsCollector
    from twisted.python.failure import Failure

    from crawler.storage import Store

logger = logging.getLogger(__name__)


def _count(settings: BaseSettings, name: str) -> int:
    value = settings.getint(name, getattr(defaults, name))
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, not {value}")
    return value


@dataclass(frozen=True)
class SnapshotConfig:
    enabled: bool = defaults.SNAPSHOTS_ENABLED
    directory: Path = Path(defaults.SNAPSHOT_DIR)
    max_count: int = defaults.SNAPSHOT_MAX_COUNT
    max_bytes: int = defaults.SNAPSHOT_MAX_BYTES
    body_bytes: int = defaults.SNAPSHOT_BODY_BYTES

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> SnapshotConfig:
        """The ``SNAPSHOT*`` settings; ``ValueError`` (one line) when a number is negative."""
        return cls(
            enabled=settings.getbool("SNAPSHOTS_ENABLED", defaults.SNAPSHOTS_ENABLED),
            directory=Path(str(settings.get("SNAPSHOT_DIR") or defaults.SNAPSHOT_DIR)),
            max_count=_count(settings, "SNAPSHOT_MAX_COUNT"),
            max_bytes=_count(settings, "SNAPSHOT_MAX_BYTES"),
            body_bytes=_count(settings, "SNAPSHOT_BODY_BYTES"),
        )


def original_url(request: Request) -> str:
    """The URL the spider asked for (before redirects): the one to fetch again."""
    redirects = request.meta.get("redirect_urls")
    return str(redirects[0]) if redirects else request.url


def _headers(headers: Headers, redactor: Redactor) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, raw in headers.items():
        text = name.decode("latin-1")
        items = [v.decode("latin-1") for v in raw]
        values[text] = redactor.mask(text, items[0] if len(items) == 1 else items)
    return values


class SnapshotFolder:
    """The snapshot files of one run, within the count and byte caps."""

    def __init__(self, config: SnapshotConfig, folder: str, prefix: str = "") -> None:
        self.config = config
        self.folder = folder  # "run-<id>", relative to config.directory
        self.prefix = prefix  # "w<k>-" for worker k of several: one numbering per process
        self.saved = 0
        self.used = 0  # bytes written
        self.broken = False  # a write failed: no more files this run
        self._next: int | None = None

    @property
    def path(self) -> Path:
        return self.config.directory / self.folder

    @property
    def full(self) -> bool:
        """No more snapshots this run: the count cap is reached, or the folder is unwritable."""
        return self.broken or self.saved >= self.config.max_count

    def keep(
        self,
        kind: str,
        record: dict[str, Any],
        body: bytes | None,
        html: bool,
        screenshot: bytes | None = None,
    ) -> str | None:
        """Write the body and the screenshot (if any) and the JSON record: the JSON's path
        relative to the snapshot directory, or None past the caps (a screenshot past the byte
        cap is left out). ``OSError`` when the files cannot be written."""
        if self.saved >= self.config.max_count:
            return None
        number = self._peek()
        stem = f"{self.prefix}{number:04d}-{kind}"
        if body is not None:
            record["body"] = f"{stem}.{'html' if html else 'bin'}"
        data = json.dumps(record, indent=2, ensure_ascii=False).encode() + b"\n"
        size = len(data) + (len(body) if body is not None else 0)
        if self.used + size > self.config.max_bytes:
            return None
        if screenshot is not None:
            record["screenshot"] = f"{stem}.png"
            with_png = json.dumps(record, indent=2, ensure_ascii=False).encode() + b"\n"
            bigger = size - len(data) + len(with_png) + len(screenshot)
            if self.used + bigger <= self.config.max_bytes:
                data, size = with_png, bigger
            else:
                record["screenshot"] = None
                screenshot = None
        if body is not None:
            self._write(self.path / record["body"], body)
        if screenshot is not None:
            self._write(self.path / record["screenshot"], screenshot)
        self._write(self.path / f"{stem}.json", data)  # last: the JSON names complete files
        self._next, self.saved, self.used = number + 1, self.saved + 1, self.used + size
        return f"{self.folder}/{stem}.json"

    def _peek(self) -> int:
        """The next file number: after the files a restarted process of the run left."""
        if self._next is None:
            self.path.mkdir(parents=True, exist_ok=True)
            pattern = re.compile(rf"{re.escape(self.prefix)}(\d+)-")
            numbers = [int(m.group(1)) for p in self.path.iterdir() if (m := pattern.match(p.name))]
            self._next = max(numbers, default=0) + 1
        return self._next

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        handle = create_part(part_path(path))
        try:
            handle.write(data)
            publish(handle, path)
        except BaseException:
            discard(handle)
            raise


class ErrorSnapshots:
    """Records the run's failed pages and keeps copies of them and of rejected items' pages."""

    def __init__(self, crawler: Crawler, config: SnapshotConfig, store: Store | None) -> None:
        self.crawler = crawler
        self.config = config
        self.store = store
        if store is not None:
            store.hold()
        self.run_id: int | None = None
        self.redactor = Redactor(())
        self.folder = SnapshotFolder(config, "run-unknown")
        self.pending: list[FailedPage] = []
        self.links: list[RejectLink] = []
        self.last_flush = time.monotonic()
        self.store_failed = False
        self._reject_page: tuple[Response, str | None] | None = None  # the last rejected page
        # screenshots of failed rendered pages, from download to response_received: an entry
        # goes with its request (a retried attempt's request is dropped, and its screenshot)
        self._screenshots: WeakKeyDictionary[Request, bytes] = WeakKeyDictionary()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ErrorSnapshots:
        settings = crawler.settings
        if not settings.getbool("RUN_RECORD", defaults.RUN_RECORD):
            raise NotConfigured  # shell, fetch, parse, check: no run, nothing kept
        config = SnapshotConfig.from_settings(settings)
        try:
            store: Store | None = store_for(crawler)
        except NotConfigured:
            store = None  # no store: the files only, in run-<UTC time>/
        if store is None and not config.enabled:
            raise NotConfigured("SNAPSHOTS_ENABLED is off and there is no store")
        ext = cls(crawler, config, store)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.response_downloaded, signal=signals.response_downloaded)
        crawler.signals.connect(ext.response_received, signal=signals.response_received)
        crawler.signals.connect(ext.fetch_failed, signal=fetch_failed)
        crawler.signals.connect(ext.item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Spider) -> None:
        stats = self._stats()
        run = stats.get_value(keys.RUN_ID)  # set by RunRecorder (100), opened before us (120)
        self.run_id = None if run is None else int(run)
        settings = self.crawler.settings
        secrets = settings_secrets(settings) | arguments_secrets(getattr(spider, "arguments", {}))
        self.redactor = Redactor(secrets)
        name = f"run-{self.run_id}" if self.run_id is not None else f"run-{_utc_stamp()}"
        workers = settings.getint("WORKER_COUNT", 1)
        prefix = f"w{settings.getint('WORKER_INDEX', 0)}-" if workers > 1 else ""
        self.folder = SnapshotFolder(self.config, name, prefix)

    # --- what failed ------------------------------------------------------------------------
    def response_downloaded(self, response: Response, request: Request) -> None:
        """Take a screenshot off the meta before a retry copies it into the next request."""
        screenshot = request.meta.pop(SCREENSHOT, None)
        if screenshot is not None and self.config.enabled:
            self._screenshots[request] = screenshot

    def response_received(self, response: Response, request: Request) -> None:
        screenshot = self._screenshots.pop(request, None)
        if response.status < 400 or is_own_request(request):
            return  # robots.txt is a component's request, not a page of the crawl
        snapshot = self._snapshot(
            str(response.status),
            request,
            response,
            {"error": f"http_{response.status}"},
            screenshot,
        )
        self._record(original_url(request), response.status, f"http_{response.status}", snapshot)

    def fetch_failed(self, request: Request, failure: Failure) -> None:
        exc = failure.value
        if exc is None or deliberate(exc) or is_own_request(request):
            return
        error = error_name(exc)
        details = {"error": error, "message": self.redactor(f"{type(exc).__name__}: {exc}")}
        snapshot = self._snapshot("error", request, None, details)
        self._record(original_url(request), None, error, snapshot)

    def item_dropped(self, item: Any, response: Any, exception: BaseException) -> None:
        if not isinstance(exception, RejectItem) or not isinstance(response, Response):
            return
        if self._reject_page is not None and self._reject_page[0] is response:
            snapshot = self._reject_page[1]  # another item of the same page: one copy
        else:
            details = {"reject_reason": self.redactor(exception.reason)}
            snapshot = self._snapshot("reject", response.request, response, details)
            self._reject_page = (response, snapshot)
        url = ItemAdapter(item).get("url") if ItemAdapter.is_item(item) else None
        if snapshot is not None and url is not None and self.run_id is not None:
            self.links.append(RejectLink(str(url), snapshot))
            self._flush_if_due()

    # --- the files --------------------------------------------------------------------------
    def _snapshot(
        self,
        kind: str,
        request: Request | None,
        response: Response | None,
        details: dict[str, Any],
        screenshot: bytes | None = None,
    ) -> str | None:
        """Keep one snapshot within the caps; its JSON path (relative), or None."""
        if not self.config.enabled:
            return None
        if self.folder.full:
            self._stats().inc_value(keys.SNAPSHOTS_SKIPPED)
            return None
        body, truncated, html = None, False, False
        if response is not None:
            limit = self.config.body_bytes
            truncated = len(response.body) > limit
            body = self._masked_body(response.body[: limit + self._longest_secret])[:limit]
            content_type = response.headers.get(b"Content-Type") or b""
            html = b"html" in content_type.lower()
        record = self._record_of(request, response, details, truncated)
        try:
            path = self.folder.keep(kind, record, body, html, screenshot)
        except OSError as exc:
            self.folder.broken = True
            logger.warning(f"snapshots: cannot write in {self.folder.path}, none kept now: {exc}")
            path = None
        self._stats().inc_value(keys.SNAPSHOTS_SKIPPED if path is None else keys.SNAPSHOTS_SAVED)
        return path

    @property
    def _longest_secret(self) -> int:
        return max((len(s.encode()) for s in self.redactor.secrets), default=0)

    def _masked_body(self, body: bytes) -> bytes:
        for secret in self.redactor.secrets:  # a page that echoes a token keeps it no more
            body = body.replace(secret.encode("utf-8", "replace"), MASK.encode())
        return body

    def _record_of(
        self,
        request: Request | None,
        response: Response | None,
        details: dict[str, Any],
        truncated: bool,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "url": self.redactor(original_url(request)) if request is not None else None,
            "final_url": self.redactor(response.url) if response is not None else None,
            "status": response.status if response is not None else None,
            **details,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "run_id": self.run_id,
            "method": request.method if request is not None else None,
            "request_headers": _headers(request.headers, self.redactor) if request else {},
            "response_headers": _headers(response.headers, self.redactor) if response else {},
            "rendered": response is not None and "playwright" in response.flags,
            "body": None,
            "body_bytes": len(response.body) if response is not None else 0,
            "truncated": truncated,
            "screenshot": None,  # NNNN-<kind>.png of a rendered page (SnapshotFolder.keep)
        }
        return record

    # --- the rows ---------------------------------------------------------------------------
    def _record(self, url: str, status: int | None, error: str, snapshot: str | None) -> None:
        if self.run_id is None or self.store is None:
            return  # no run row: the files alone
        created = datetime.now(UTC).isoformat(timespec="milliseconds")
        host = urlsplit(url).hostname
        self.pending.append(FailedPage(url, host, status, error, snapshot, created))
        self._stats().inc_value(keys.FAILED_PAGES)  # now: the run row takes the stats before us
        self._flush_if_due()

    def _flush_if_due(self) -> None:
        if self.store is None:
            return
        batch = self.store.config
        waited = time.monotonic() - self.last_flush >= batch.batch_seconds
        if waited or len(self.pending) + len(self.links) >= batch.batch_size:
            self.flush()

    def flush(self) -> bool:
        """Write the pending rows and links in one transaction; kept for later on failure."""
        self.last_flush = time.monotonic()
        if self.run_id is None or self.store is None or not self.store.is_open:
            return False
        if not self.pending and not self.links:
            return True
        try:
            waiting = write_failures(self.store.conn, self.run_id, self.pending, self.links)
        except (sqlite3.Error, StoreError) as exc:
            log = logger.debug if self.store_failed else logger.warning
            log(f"failed_pages: {len(self.pending)} rows not written yet: {exc}")
            self.store_failed = True
            return False
        self.store_failed = False
        self.pending, self.links = [], waiting
        return True

    def spider_closed(self, spider: Spider, reason: str) -> None:
        try:
            if not self.flush() and self.pending:
                logger.warning(
                    f"failed_pages: {len(self.pending)} rows of run {self.run_id} not written"
                )
            elif self.links:
                logger.debug(f"rejects: {len(self.links)} snapshots without a reject row")
        finally:
            if self.store is not None:
                self.store.release()
        if self.folder.saved:
            logger.info(
                f"snapshots: {self.folder.saved} kept in {self.folder.path}"
                + (f", {n} skipped" if (n := self._skipped()) else "")
            )

    def _skipped(self) -> int:
        return int(self._stats().get_value(keys.SNAPSHOTS_SKIPPED, 0))

    def _stats(self) -> StatsCollector:
        stats = self.crawler.stats
        assert stats is not None
        return stats


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"
