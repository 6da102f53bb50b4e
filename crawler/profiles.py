"""Named concurrency and politeness profiles, chosen with ``-s CRAWL_PROFILE=NAME``.

A profile only fills in defaults: it is applied by an add-on at Scrapy's ``addon`` priority,
above Scrapy's defaults but below the project settings file, spider ``custom_settings`` and
``-s NAME=VALUE``, so any single setting can still be overridden. A profile's components
(``SPIDER_MIDDLEWARES``, ``DOWNLOAD_HANDLERS``) are added to the project's or spider's own dict
of the same name, never replaced by it: naming one (or a handler's scheme) with ``None``
switches it off, naming another handler for a scheme replaces the profile's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler.components import add_components
from crawler.rendering.config import RenderConfig

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

SAFE_AIOHTTP = "crawler.safety.aiohttp_handler.SafeAiohttpDownloadHandler"

PROFILES: dict[str, dict[str, Any]] = {
    # For sites you do not own: few parallel requests per host, a delay, AutoThrottle backs off
    # as the server slows down.
    "polite": {
        "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
        "DOWNLOAD_DELAY": 1.0,
        "DOWNLOAD_DELAY_JITTER": 0.5,  # each delay varies by ±50%
        "AUTOTHROTTLE_ENABLED": True,
        "AUTOTHROTTLE_START_DELAY": 1.0,
        "AUTOTHROTTLE_MAX_DELAY": 60.0,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
        "RETRY_TIMES": 3,
        "DOWNLOAD_TIMEOUT": 30,
    },
    # Sites that can take more: several requests per host, AutoThrottle still on.
    "balanced": {
        "CONCURRENT_REQUESTS": 32,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
        "DOWNLOAD_DELAY": 0.25,
        "DOWNLOAD_DELAY_JITTER": 0.5,  # each delay varies by ±50%
        "AUTOTHROTTLE_ENABLED": True,
        "AUTOTHROTTLE_START_DELAY": 0.5,
        "AUTOTHROTTLE_MAX_DELAY": 30.0,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 4.0,
        "RETRY_TIMES": 2,
        "DOWNLOAD_TIMEOUT": 20,
    },
    # Servers you own or are allowed to load (the demo site, benchmarks): no delay, no throttle.
    "fast": {
        "CONCURRENT_REQUESTS": 100,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 100,
        "DOWNLOAD_DELAY": 0.0,
        "DOWNLOAD_DELAY_JITTER": 0.0,
        "AUTOTHROTTLE_ENABLED": False,
        "RETRY_TIMES": 1,
        "DOWNLOAD_TIMEOUT": 10,
        # Scrapy starts CONCURRENT_ITEMS + 1 asyncio tasks per response to process its callback's
        # output; with one item per page, 1 is enough (fewer tasks: less CPU than 8 or 100).
        "CONCURRENT_ITEMS": 1,
        # Read start() only as the downloader takes requests: a URL file stays the frontier.
        "SPIDER_MIDDLEWARES": {"crawler.middlewares.lazystart.LazyStartMiddleware": 10},
        # Scrapy's aiohttp handler costs less CPU per page than its Twisted one; ours resolves
        # names through the same private-target policy (crawler/safety/aiohttp_handler.py).
        # A crawl that renders keeps the rendering handler (see ProfileAddon).
        "DOWNLOAD_HANDLERS": {"http": SAFE_AIOHTTP, "https": SAFE_AIOHTTP},
    },
}


# Settings that are component priority dicts: a profile adds to them (see the module docstring).
COMPONENT_SETTINGS = frozenset(
    {"SPIDER_MIDDLEWARES", "DOWNLOADER_MIDDLEWARES", "EXTENSIONS", "DOWNLOAD_HANDLERS"}
)


class UnknownProfileError(ValueError):
    pass


class ProfileAddon:
    """Applies the profile named by ``CRAWL_PROFILE`` at ``addon`` priority."""

    def update_settings(self, settings: BaseSettings) -> None:
        name = str(settings.get("CRAWL_PROFILE") or "polite").strip().lower()
        if name not in PROFILES:
            raise UnknownProfileError(
                f"unknown CRAWL_PROFILE {name!r}: choose one of {', '.join(PROFILES)}"
            )
        settings.set("CRAWL_PROFILE", name, priority=settings.getpriority("CRAWL_PROFILE") or 0)
        for key, value in PROFILES[name].items():
            if key == "DOWNLOAD_HANDLERS" and RenderConfig.from_settings(settings).enabled:
                continue  # the rendering add-on installs its handler for http and https
            if key in COMPONENT_SETTINGS:
                add_components(settings, key, value)
            else:
                settings.set(key, value, priority="addon")
