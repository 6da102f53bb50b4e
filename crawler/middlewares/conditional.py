"""``ConditionalRequestMiddleware``: incremental recrawls driven by the store's ``fetch_state``.

Settings: ``CONDITIONAL_ENABLED`` (off: not loaded; it is also off when ``SQLITE_ENABLED`` is),
``CONDITIONAL_REVALIDATE`` (off: known URLs are fetched in full; their state is still recorded).

Every response to a spider's GET request is recorded in ``fetch_state`` under the spider's
name (5xx and 429 answers are not: they say nothing about the page) and counted in
``incremental/new``, ``/unchanged`` (body hash as stored) or ``/changed``; an item scraped from
the response links the record to its row (table and ``url``). Two request meta keys opt in to
more; our spiders set them on requests for pages whose links they do not follow (a 304 or a skip
yields no links):

* ``revalidate`` (``REVALIDATE``): send ``If-None-Match`` / ``If-Modified-Since`` from the stored
  ETag / Last-Modified. A 304 never reaches the callback: the rows of the linked item table whose
  ``url`` is the linked item's, the requested URL or the URL its redirects started from get this
  run's ``last_seen_at`` and ``last_run_id`` (``changed_at`` stays), and the errback receives
  ``NotModified`` (``incremental/not_modified``).
* ``min_age`` (``MIN_AGE``, seconds): a URL fetched less than that long ago is not requested:
  the errback receives ``FetchedRecently`` (``incremental/skipped_recent``).

Only state the same spider recorded, in a run that finished, is used (see
``crawler.storage.fetchstate``); and only while the item row its fetch stored is still in the
store: otherwise the URL is fetched in full (``incremental/row_missing``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn
from weakref import WeakKeyDictionary

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.http.request import NO_CALLBACK
from twisted.internet import task

from crawler import defaults
from crawler.exceptions import IncrementalSkip, NotModified
from crawler.itemtables import TableRules
from crawler.meta import MIN_AGE, REVALIDATE
from crawler.stats import (
    CHANGED,
    NEW,
    NOT_MODIFIED,
    ROW_MISSING,
    ROWS_TOUCHED,
    SKIPPED_RECENT,
    UNCHANGED,
    UNSAVED,
)
from crawler.storage import StoreError, store_for
from crawler.storage.fetchstate import FetchRecord, FetchState
from crawler.storage.store import utc_now

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request
    from scrapy.settings import BaseSettings
    from twisted.python.failure import Failure

    from crawler.storage import Store

logger = logging.getLogger(__name__)

_VALIDATED = "_validated_url"  # request meta: the URL whose validators the headers carry
_VALIDATOR_HEADERS = (b"If-None-Match", b"If-Modified-Since")


class FetchedRecently(IncrementalSkip):
    """The URL was fetched less than ``min_age`` ago: not requested at all."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "fetched recently")


@dataclass(frozen=True)
class ConditionalConfig:
    revalidate: bool = True

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> ConditionalConfig:
        if not settings.getbool("CONDITIONAL_ENABLED"):
            raise NotConfigured("CONDITIONAL_ENABLED is off")
        if not settings.getbool("RUN_RECORD", defaults.RUN_RECORD):
            # fetch state is trusted only from finished runs: without a run row (scrapy fetch,
            # shell, parse, check) it would never be used, so none is written
            raise NotConfigured
        return cls(revalidate=settings.getbool("CONDITIONAL_REVALIDATE", True))


class ConditionalRequestMiddleware:
    """Records every fetch, revalidates known URLs, answers 304s and ``min_age`` from the store."""

    def __init__(self, crawler: Crawler, config: ConditionalConfig, store: Store) -> None:
        self.crawler = crawler
        self.config = config
        self.state = FetchState(store)
        store.hold()
        self.active = False  # the store is open
        self.rules: TableRules | None = None  # names the table each item goes to
        self.loop: task.LoopingCall | None = None
        self._read_failed = False
        # what process_request found for a request (not in meta: meta may be serialised)
        self._stored: WeakKeyDictionary[Request, FetchRecord | None] = WeakKeyDictionary()
        # requests whose response this run recorded -> the item row it was linked to, if any
        self._recorded: WeakKeyDictionary[Request, tuple[str, str | None] | None] = (
            WeakKeyDictionary()
        )

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ConditionalRequestMiddleware:
        try:
            config = ConditionalConfig.from_settings(crawler.settings)
            store = store_for(crawler)  # NotConfigured when SQLITE_ENABLED is off
        except NotConfigured as exc:
            if getattr(crawler.spider, "arguments", {}).get("min_age") is not None:
                logger.warning(f"min_age is ignored: {exc}")
            raise
        mw = cls(crawler, config, store)
        crawler.signals.connect(mw.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(mw.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(mw.item_scraped, signal=signals.item_scraped)
        return mw

    def spider_opened(self) -> None:
        try:
            self.state.store.open()
        except StoreError:
            return  # the SQLite pipeline reports it and closes the spider
        # another spider's validators would make 304s of pages whose items it never stored
        self.state.scope = getattr(self.crawler.spider, "name", "")
        try:  # the table each item goes to, named as the store names it
            self.rules = TableRules.from_settings(self.crawler.settings, self.crawler.spider)
        except ValueError:
            self.rules = None  # a bad ITEM_TABLES/ITEM_KEYS: the SQLite pipeline reports it
        self.active = True
        self.loop = task.LoopingCall(self._flush_if_due)
        interval = max(0.05, self.state.store.config.batch_seconds / 2)
        self.loop.start(interval, now=False).addErrback(self._loop_failed)

    def spider_idle(self) -> None:
        # Usually the last moment before the run recorder marks the run finished (spider_closed
        # handlers run in connection order, and extensions connect before middlewares).
        if self.active:
            self._flush()

    def spider_closed(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        try:
            if self.active and self.state.store.pending_items:
                # validators without their items would make the next crawl skip those pages
                self.state.drop_records()
            if self.active and not self._flush():
                unsaved = self.state.pending
                self.crawler.stats.set_value(UNSAVED, unsaved)
                logger.error(
                    f"fetch state of {unsaved} URLs not saved (they will be fetched in full"
                    f" next time): {self.state.last_error}"
                )
            self._log_summary()
        finally:
            self.active = False
            self.state.store.release()

    # --- requests ---------------------------------------------------------------------------
    def process_request(self, request: Request) -> None:
        if not self._applies(request):
            return None
        if request.meta.get(_VALIDATED) not in (None, request.url):
            # a redirect copied the validators of the URL it came from
            for name in _VALIDATOR_HEADERS:
                request.headers.pop(name, None)
            del request.meta[_VALIDATED]
        stored = self._stored[request] = self._lookup(request.url)
        if stored is None or not stored.trusted:
            return None
        min_age = request.meta.get(MIN_AGE)
        revalidate = request.meta.get(REVALIDATE) and self.config.revalidate
        if not (min_age or revalidate):
            return None
        if not self.state.backed(stored):
            # a 304 or a skip would stand for an item row the store no longer holds
            self.crawler.stats.inc_value(ROW_MISSING)
            return None
        if min_age and stored.age() < float(min_age):
            self.crawler.stats.inc_value(SKIPPED_RECENT)
            raise FetchedRecently(request.url)
        if revalidate:
            self._add_validators(request, stored)
        return None

    def _add_validators(self, request: Request, stored: FetchRecord) -> None:
        if stored.status not in (200, 304) or request.meta.get("playwright"):
            return  # nothing to revalidate; or a browser, which would render an empty 304
        added = False
        values = (stored.etag, stored.last_modified)
        for name, value in zip(_VALIDATOR_HEADERS, values, strict=True):
            if value and name not in request.headers:
                request.headers[name] = value
                added = True
        if added:
            request.meta[_VALIDATED] = request.url

    # --- responses --------------------------------------------------------------------------
    def process_response(self, request: Request, response: Response) -> Response:
        if not self._applies(request):
            return response
        stored = self._stored.pop(request) if request in self._stored else self._lookup(request.url)
        now = utc_now()
        validated = request.meta.get(_VALIDATED) == request.url
        if response.status == 304 and stored is not None and validated:
            self._not_modified(request, response, stored, now)
        if response.status in (304, 429) or response.status >= 500:
            # a 304 we did not ask for, or a passing failure: keep the last real answer's state
            return response
        digest = hashlib.sha256(response.body).hexdigest()
        if stored is None:
            self.crawler.stats.inc_value(NEW)
        else:
            same = stored.content_hash == digest
            self.crawler.stats.inc_value(UNCHANGED if same else CHANGED)
        self.state.record(
            FetchRecord(
                url=request.url,
                status=response.status,
                etag=_header(response, b"ETag"),
                last_modified=_header(response, b"Last-Modified"),
                content_hash=digest,
                fetched_at=now,
                run_id=self.state.store.run_id,
            )
        )
        self._recorded[request] = None
        self._flush_if_due()
        return response

    def item_scraped(self, item: Any, response: Response | Failure) -> None:
        """Link the recorded fetch of ``response`` to the row its item goes to."""
        if not self.active or self.rules is None:
            return
        try:
            table = self.rules.place(item).table
        except (TypeError, ValueError):
            return  # not an item the store can place: it backs no 304
        source = response if isinstance(response, Response) else _failed_response(response)
        request = getattr(source, "request", None)
        if request is None or request not in self._recorded:
            return  # not a response this run recorded (a 304, a timeout, another request's)
        url = ItemAdapter(item).get("url")
        link = (table, url if isinstance(url, str) else None)
        first = self._recorded[request]
        if first is not None and first != link:
            link = (first[0], None)  # several rows from one page: no single row backs a 304
        self._recorded[request] = link
        self.state.link(request.url, *link)

    def _not_modified(
        self, request: Request, response: Response, stored: FetchRecord, now: str
    ) -> NoReturn:
        """Record the revalidation, mark the URL's item rows seen, and end the request."""
        self.state.record(
            replace(
                stored,
                status=304,
                etag=_header(response, b"ETag") or stored.etag,
                last_modified=_header(response, b"Last-Modified") or stored.last_modified,
                fetched_at=now,
                run_id=self.state.store.run_id,
                trusted=False,
            )
        )
        if stored.item_table is not None:  # the rows of that table only: never another spider's
            origin = request.meta.get("redirect_urls", [request.url])[0]
            urls = (u for u in (stored.item_url, request.url, origin) if u is not None)
            self.state.touch(stored.item_table, dict.fromkeys(urls), now)
        self.crawler.stats.inc_value(NOT_MODIFIED)
        self._flush_if_due()
        raise NotModified(request.url)

    # --- helpers ----------------------------------------------------------------------------
    def _applies(self, request: Request) -> bool:
        # NO_CALLBACK: requests made by components (robots.txt), not pages of the spider
        return self.active and request.method == "GET" and request.callback is not NO_CALLBACK

    def _lookup(self, url: str) -> FetchRecord | None:
        try:
            return self.state.get(url)
        except StoreError as exc:
            if not self._read_failed:
                self._read_failed = True
                logger.warning(f"fetch state unreadable, fetching in full: {exc}")
            return None

    def _flush_if_due(self) -> None:
        if self.active and self.state.flush_due():
            self._flush()

    def _flush(self) -> bool:
        written = self.state.flush()
        if self.state.rows_touched:
            self.crawler.stats.set_value(ROWS_TOUCHED, self.state.rows_touched)
        return written

    def _log_summary(self) -> None:
        stats = self.crawler.stats
        counts = [
            (int(stats.get_value(key, 0)), text)
            for key, text in (
                (NOT_MODIFIED, "not modified"),
                (UNCHANGED, "unchanged"),
                (CHANGED, "changed"),
                (NEW, "new"),
                (SKIPPED_RECENT, "skipped as fetched less than min_age ago"),
            )
        ]
        if any(count for count, _ in counts):
            logger.info("incremental: " + ", ".join(f"{n:,} {text}" for n, text in counts))
        if missing := int(stats.get_value(ROW_MISSING, 0)):
            logger.info(f"incremental: {missing:,} known pages fetched in full: stored row gone")

    def _loop_failed(self, failure: Failure) -> None:
        logger.error(f"fetch state periodic flush stopped: {failure.getErrorMessage()}")


def _failed_response(failure: Failure) -> Response | None:
    """The response an errback's failure carries (an HTTP error status), if any."""
    response = getattr(failure.value, "response", None)
    return response if isinstance(response, Response) else None


def _header(response: Response, name: bytes) -> str | None:
    value: Any = response.headers.get(name)
    return value.decode("latin-1") if value else None
