"""``RenderMiddleware``: the one place that decides whether a request is rendered in Chromium.

For each request, the first rule that applies wins:

1. ``meta["playwright"]`` is already set (a spider that drives scrapy-playwright itself): kept.
2. ``meta["render"]``: ``True``/``"always"`` browser, ``False``/``"never"`` HTTP, ``"auto"``.
3. URLs of files that are not web pages (robots.txt, sitemaps, images, PDFs…): HTTP.
4. ``RENDER_MODE`` (``-a render=…``): ``never`` HTTP, ``always`` browser, ``auto``:
   fetch over HTTP, and fetch again in the browser when the detector says the page needs
   JavaScript (``render/escalated``), else keep it (``render/http_only``). The detector judges
   every page fetched over HTTP: one pattern can mix static pages and JavaScript ones. What is
   learnt per host and path pattern only saves HTTP fetches: a pattern whose pages needed the
   browser sends later ones straight to it (``render/direct_browser``).

``meta["render_wait_for"]`` (or ``RENDER_WAIT_FOR``) is a CSS selector that marks a complete
page: the browser waits for it and ``auto`` renders pages that lack it. ``meta["render_click"]``
is a "load more" button clicked until it is gone. Off (``NotConfigured``) unless rendering is on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scrapy.exceptions import NotConfigured
from scrapy.http import TextResponse
from scrapy.linkextractors import IGNORED_EXTENSIONS

from crawler.rendering.config import ALWAYS, AUTO, NEVER, SHELL_WORDS, RenderConfig, render_mode
from crawler.rendering.detector import needs_browser, rendering_helped, visible_words
from crawler.rendering.memory import (
    BROWSER_NEEDED,
    BROWSER_USELESS,
    HTTP_OK,
    FetcherMemory,
    url_pattern,
)

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response

logger = logging.getLogger(__name__)

AUTO_STATE = "_render_auto"  # how an `auto` request is being fetched: http, direct, escalated
_NOT_PAGES = frozenset({*IGNORED_EXTENSIONS, "txt", "xml", "json", "csv", "gz", "rss", "atom"})


def _not_a_page(url: str) -> bool:
    _, dot, extension = urlsplit(url).path.rpartition("/")[2].rpartition(".")
    return bool(dot) and extension.lower() in _NOT_PAGES


def _meta_mode(value: Any) -> str:
    if isinstance(value, bool):
        return ALWAYS if value else NEVER
    return render_mode(str(value))


class RenderMiddleware:
    """Sends each request to plain HTTP or to the browser (see the module docstring)."""

    def __init__(self, crawler: Crawler, config: RenderConfig) -> None:
        self.crawler, self.config = crawler, config
        self.memory = FetcherMemory(config.learn_after, config.recheck_every)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RenderMiddleware:
        config = RenderConfig.from_settings(crawler.settings)
        if not config.enabled:
            raise NotConfigured  # off by default: no warning for what nobody switched on
        return cls(crawler, config)

    def _count(self, key: str) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(f"render/{key}")

    def _mode(self, request: Request) -> str:
        explicit = request.meta.get("render")
        if explicit is not None:
            return _meta_mode(explicit)
        return NEVER if _not_a_page(request.url) else self.config.mode

    def process_request(self, request: Request) -> None:
        meta = request.meta
        if "playwright" in meta:
            return
        mode = self._mode(request)
        if mode == ALWAYS:
            self._count("forced")
            meta["playwright"] = True
        elif mode == AUTO:
            if self.memory.go_direct(url_pattern(request.url)):
                self._count("direct_browser")
                meta.update({"playwright": True, AUTO_STATE: "direct"})
            else:
                meta[AUTO_STATE] = "http"

    def process_response(self, request: Request, response: Response) -> Request | Response:
        state = request.meta.get(AUTO_STATE)
        if state is None:
            return response
        pattern = url_pattern(request.url)
        required = request.meta.get("render_wait_for") or self.config.wait_for
        if "playwright" in response.flags:
            if state == "escalated":
                self._learn_from_rendering(request, response, pattern, required)
            return response
        reason = needs_browser(response, required, self.config.min_words)
        if reason is None:
            if response.status == 200:
                self.memory.record(pattern, HTTP_OK)
            self._count("http_only")
            return response
        # Never skipped for what other pages of the pattern taught: this page looks empty.
        return self._escalate(request, response, reason)

    def _escalate(self, request: Request, response: Response, reason: str) -> Request:
        self._count("escalated")
        self._count(f"escalated/{reason}")
        logger.debug(f"rendering {request.url}: {reason.replace('_', ' ')}")
        words = visible_words(response.selector) if isinstance(response, TextResponse) else 0
        meta = {**request.meta, "playwright": True, AUTO_STATE: "escalated", SHELL_WORDS: words}
        return request.replace(meta=meta, dont_filter=True)

    def _learn_from_rendering(
        self, request: Request, response: Response, pattern: str, required: str | None
    ) -> None:
        helped = rendering_helped(response, required, request.meta.get(SHELL_WORDS, 0))
        self.memory.record(pattern, BROWSER_NEEDED if helped else BROWSER_USELESS)
        if not helped:
            self._count("browser_useless")
