"""Turns scrapy-playwright on for crawls that render, and leaves every other crawl untouched.

When ``RENDER_MODE`` is ``always`` or ``auto`` (``-a render=…``), or ``RENDER_ENABLED`` is set:

* ``DOWNLOAD_HANDLERS`` for ``http`` and ``https`` become ``RenderDownloadHandler`` (it still
  fetches requests that are not rendered over plain HTTP), unless they are scrapy-playwright's
  handler or a subclass already;
* ``PLAYWRIGHT_LAUNCH_OPTIONS`` gets the discovered Chromium and our default arguments, or the
  crawl stops with ``BrowserNotFoundError`` saying how to install one;
* the navigation timeout defaults to ``DOWNLOAD_TIMEOUT``, and Playwright errors (navigation
  timeouts, a crashed browser) join ``RETRY_EXCEPTIONS``, so they are retried like other
  download errors.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy.settings import SETTINGS_PRIORITIES
from scrapy.utils.misc import load_object

from crawler.rendering.browser import launch_options
from crawler.rendering.config import RenderConfig

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

HANDLER = "crawler.rendering.handler.RenderDownloadHandler"
PLAYWRIGHT_ERROR = "playwright.async_api.Error"  # base of TimeoutError and TargetClosedError


def _force(settings: BaseSettings, name: str, value: Any) -> None:
    """Set ``name`` at its current priority (or ``addon``): rendering cannot work without it."""
    priority = max(settings.getpriority(name) or 0, SETTINGS_PRIORITIES["addon"])
    settings.set(name, value, priority=priority)


def _renders(handler: Any) -> bool:
    """Is ``handler`` scrapy-playwright's (or a subclass, such as ours)? Then it is kept."""
    if handler is None:
        return False
    # imported here: crawls that do not render never load Playwright
    from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler

    handler_class = load_object(handler) if isinstance(handler, str) else handler
    return isinstance(handler_class, type) and issubclass(
        handler_class, ScrapyPlaywrightDownloadHandler
    )


class RenderAddon:
    """Configures scrapy-playwright from ``RENDER_*`` settings when rendering is on."""

    def update_settings(self, settings: BaseSettings) -> None:
        if not RenderConfig.from_settings(settings).enabled:
            return
        _force(settings, "PLAYWRIGHT_LAUNCH_OPTIONS", launch_options(settings))
        handlers = settings.getdict("DOWNLOAD_HANDLERS")
        for scheme in ("http", "https"):
            if not _renders(handlers.get(scheme)):
                if handlers.get(scheme) is not None:
                    logger.warning(f"rendering replaces the {scheme} handler {handlers[scheme]}")
                handlers[scheme] = HANDLER
        _force(settings, "DOWNLOAD_HANDLERS", handlers)
        if settings.get("PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT") is None:
            timeout_ms = settings.getfloat("DOWNLOAD_TIMEOUT", 180) * 1000
            settings.set("PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT", timeout_ms, priority="addon")
        retried = settings.getlist("RETRY_EXCEPTIONS")
        if PLAYWRIGHT_ERROR not in retried:
            _force(settings, "RETRY_EXCEPTIONS", [*retried, PLAYWRIGHT_ERROR])
