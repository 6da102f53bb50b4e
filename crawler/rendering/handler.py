"""scrapy-playwright's download handler with the parts that keep long crawls fast and flat.

On top of ``ScrapyPlaywrightDownloadHandler`` (which closes a page after every download, on
success and on error, and relaunches a browser that disconnects):

* at most ``PLAYWRIGHT_MAX_PAGES_PER_CONTEXT`` pages render at once; pages go to contexts
  used in turn (``RENDER_CONTEXT_MAX_PAGES`` navigations each, see ``contexts.py``), and a page
  is reused for the next navigation in its context rather than closed (a new page costs a new
  renderer process); after an error it is closed; a retired context is closed as soon as its
  last navigation is over;
* resource types in ``RENDER_BLOCK_RESOURCES`` are aborted (``PLAYWRIGHT_ABORT_REQUEST``, when
  set, is still asked for the rest);
* after navigation the page is settled (``settle.py``) before its HTML is taken;
* a page that answered 400 or more is screenshotted (PNG, the viewport) before it is released,
  into ``meta[SCREENSHOT]`` for ``ErrorSnapshots``, when ``SNAPSHOT_SCREENSHOTS`` and
  ``SNAPSHOTS_ENABLED`` are on in a recorded run and fewer than ``SNAPSHOT_MAX_COUNT`` snapshots
  are kept; a screenshot that fails is logged at DEBUG, the response is unchanged;
* pages still open when the spider closes are counted in ``render/open_pages_at_close``.

It builds on scrapy-playwright internals (``_download_request_with_retry``,
``_apply_page_methods``, ``_browser_disconnected_callback``, ``_close``, ``context_wrappers``),
checked against scrapy-playwright 0.0.48 (pinned in pyproject.toml; tests/test_pinned_internals.py
fails when one of them changes). Requests that bring their own page or context
(``playwright_include_page``, ``playwright_page``, ``playwright_context``…) are left to it.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from playwright.async_api import Error as PlaywrightError
from scrapy import signals
from scrapy_playwright._utils import _maybe_await
from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler

from crawler import defaults
from crawler import stats as keys
from crawler.meta import SCREENSHOT
from crawler.rendering.config import SHELL_WORDS, RenderConfig
from crawler.rendering.contexts import ContextRotation
from crawler.rendering.settle import settle_page
from crawler.safety.browser import abort_request_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from playwright.async_api import Page
    from playwright.async_api import Request as BrowserRequest
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response

    _Abort: TypeAlias = Callable[[BrowserRequest], Awaitable[bool] | bool]

logger = logging.getLogger(__name__)

SCREENSHOT_TIMEOUT_MS = 5000.0  # a page that cannot be drawn in this time goes without one


class RenderDownloadHandler(ScrapyPlaywrightDownloadHandler):  # type: ignore[misc]
    """Renders requests with ``meta["playwright"]``; fetches the others over plain HTTP."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.render = RenderConfig.from_settings(crawler.settings)
        self.rotation: ContextRotation[Page] = ContextRotation(self.render.context_max_pages)
        # pages rendering at once, over all our contexts (the one in use and one being retired)
        self._slots = asyncio.Semaphore(self.config.max_pages_per_context)
        self._shutting_down = False
        settings = crawler.settings
        self._screenshots = (  # ErrorSnapshots keeps them (loaded with RUN_RECORD)
            settings.getbool("SNAPSHOT_SCREENSHOTS", defaults.SNAPSHOT_SCREENSHOTS)
            and settings.getbool("SNAPSHOTS_ENABLED", defaults.SNAPSHOTS_ENABLED)
            and settings.getbool("RUN_RECORD", defaults.RUN_RECORD)
        )
        self._snapshot_cap = settings.getint("SNAPSHOT_MAX_COUNT", defaults.SNAPSHOT_MAX_COUNT)
        crawler.signals.connect(self._spider_closed, signal=signals.spider_closed)
        # the PLAYWRIGHT_ABORT_REQUEST function, if any, still decides about the other requests
        also = cast("_Abort | None", getattr(self, "abort_request", None))
        if also is not None:  # our target check, bound to this crawler's policy
            also = abort_request_for(crawler, also)
        self.abort_request = self._make_abort(also)

    def _make_abort(self, also: _Abort | None) -> Callable[[BrowserRequest], Awaitable[bool]]:
        blocked = self.render.block_resources

        async def abort(request: BrowserRequest) -> bool:
            if request.resource_type in blocked:
                return True
            return bool(await _maybe_await(also(request))) if also is not None else False

        return abort

    def _pooled(self, request: Request) -> bool:
        """Do we manage this request's context and page (not the spider)?"""
        meta = request.meta
        return (
            self.rotation.owns(meta.get("playwright_context"))
            and not meta.get("playwright_include_page")
            and meta.get("playwright_page") is None
            and not meta.get("playwright_page_event_handlers")
            and not meta.get("playwright_page_init_callback")
        )

    async def _download_request_with_retry(self, request: Request, spider: Spider) -> Response:
        if not self._pooled(request):
            return cast("Response", await super()._download_request_with_retry(request, spider))
        # A navigation holds a slot, not a page: a waiting one takes the next idle page.
        async with self._slots:
            meta = request.meta
            meta["playwright_context"] = name = self.rotation.assign()
            page = self.rotation.take_idle(name)
            if page is not None and not page.is_closed():
                meta["playwright_page"] = page
            meta["playwright_include_page"] = True  # the page is ours to keep or close
            meta.pop(SCREENSHOT, None)
            try:
                response = await super()._download_request_with_retry(request, spider)
                # a page that could not be drawn is not reused
                reuse = await self._screenshot(meta) if self._wants_screenshot(response) else True
            except BaseException:
                await self._navigation_done(name, meta, reuse=False)
                raise
            await self._navigation_done(name, meta, reuse=reuse)
            return cast("Response", response)

    def _wants_screenshot(self, response: Response) -> bool:
        return (
            self._screenshots
            and response.status >= 400
            and "playwright_suggested_filename" not in response.meta  # a download: no page
            and int(self.stats.get_value(keys.SNAPSHOTS_SAVED, 0)) < self._snapshot_cap
        )

    async def _screenshot(self, meta: dict[str, Any]) -> bool:
        """The page as it shows now, into ``meta[SCREENSHOT]``; never fails the request.
        False: the page could not be drawn (it is closed rather than reused)."""
        page: Page | None = meta.get("playwright_page")
        if page is None or page.is_closed():
            return True
        try:
            png = await page.screenshot(type="png", full_page=False, timeout=SCREENSHOT_TIMEOUT_MS)
        except Exception as exc:  # a crashed or hanging page: the snapshot goes without it
            logger.debug(f"no screenshot of {page.url}: {type(exc).__name__}: {exc}")
            return False
        meta[SCREENSHOT] = png
        self.stats.inc_value(keys.SCREENSHOTS_TAKEN)
        return True

    async def _navigation_done(self, name: str, meta: dict[str, Any], reuse: bool) -> None:
        """Keep the request's page for the next navigation, or close it (after an error)."""
        page: Page | None = meta.pop("playwright_page", None)
        meta.pop("playwright_include_page", None)
        if page is not None and (page.is_closed() or not reuse):
            await self._close_page(page)
            page = None
        to_close, close_context = self.rotation.finish(name, page)
        for stale in to_close:
            await self._close_page(stale)
        if close_context:
            await self._close_context(name)

    async def _close_page(self, page: Page) -> None:
        if page.is_closed():
            return
        with suppress(PlaywrightError):
            await page.close()
        self.stats.inc_value("playwright/page_count/closed")

    async def _close_context(self, name: str) -> None:
        wrapper = self.context_wrappers.get(name)
        if wrapper is None:
            return
        self.stats.inc_value("render/contexts_recycled")
        try:
            await wrapper.context.close()
        except Exception as exc:  # the browser may be gone already
            logger.debug(f"closing context {name}: {exc}")

    async def _apply_page_methods(self, page: Page, request: Request, spider: Spider) -> None:
        meta = request.meta
        await settle_page(
            page,
            wait_for=meta.get("render_wait_for") or self.render.wait_for,
            click=meta.get("render_click"),
            timeout=self.render.wait_timeout,
            max_clicks=self.render.max_clicks,
            shell_words=meta.get(SHELL_WORDS),
        )
        await super()._apply_page_methods(page, request, spider)

    async def _browser_disconnected_callback(self) -> None:
        self.rotation.forget()
        if not self._shutting_down:
            self.stats.inc_value("render/browser_disconnected")
            logger.warning("the browser disconnected; it is relaunched for the next page")
        await super()._browser_disconnected_callback()

    async def _spider_closed(self) -> None:
        """Every download is over: close the idle pages; any page still open leaked."""
        await asyncio.gather(*(self._close_page(page) for page in self.rotation.drain()))
        still_open = sum(len(w.context.pages) for w in self.context_wrappers.values())
        self.stats.max_value("render/open_pages_at_close", still_open)

    async def _close(self) -> None:
        self._shutting_down = True
        await super()._close()
