"""``ProjectAddon``: installs the project's defaults, components, profile and rendering.

Listed in ``ADDONS`` of ``crawler/settings.py``. Scrapy runs add-ons after the project settings,
a spider's ``custom_settings`` and ``-s`` options are known, so the add-on can fill in what the
user left unset without ever replacing what they set:

1. every setting of ``crawler.defaults`` that nobody set, at Scrapy's ``default`` priority;
2. every component of ``crawler.defaults.COMPONENTS`` that the user's dict of the same name does
   not mention (``None`` included, so naming a component with ``None`` switches it off);
3. the profile named by ``CRAWL_PROFILE`` (``crawler.profiles``);
4. scrapy-playwright when rendering is on (``crawler.rendering.addon``);
5. a worker's share of each host's politeness when ``WORKER_COUNT`` > 1 (``share_politeness``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from scrapy.utils.misc import load_object

from crawler import defaults
from crawler.components import DEFAULT, add_components
from crawler.profiles import ProfileAddon
from crawler.rendering.addon import RenderAddon

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings


def install_defaults(settings: BaseSettings) -> None:
    """Steps 1 and 2 of the module docstring: the project's defaults and components."""
    for name, value in defaults.settings_defaults().items():
        if (settings.getpriority(name) or DEFAULT) <= DEFAULT:
            settings.set(name, value, priority=DEFAULT)
    for name, table in defaults.COMPONENTS.items():
        add_components(settings, name, table)


def project_settings(settings: BaseSettings) -> BaseSettings:
    """``settings`` with the defaults and the profile installed, as a crawl will see them.

    For commands that read settings without starting a crawl (``export``, ``runs``,
    ``settings``). The profile raises ``UnknownProfileError`` for an unknown name.
    """
    install_defaults(settings)
    ProfileAddon().update_settings(settings)
    return settings


def apply_addons(settings: BaseSettings) -> BaseSettings:
    """Run the ``update_settings`` of every add-on in ``ADDONS``, as a crawl does, on ``settings``.

    Add-ons that need a running crawler (``from_crawler``) are skipped: this is for showing the
    settings a crawl will use (``scrapy settings``), not for crawling.
    """
    from scrapy.utils.conf import build_component_list

    for path in build_component_list(settings["ADDONS"]):
        addon_class = load_object(path)
        if hasattr(addon_class, "from_crawler"):
            continue
        addon = addon_class()
        if hasattr(addon, "update_settings"):
            addon.update_settings(settings)
    return settings


def share_politeness(settings: BaseSettings) -> None:
    """Step 5: N workers (``WORKER_COUNT``, set by ``crawler.workers`` on each child's command
    line) crawl each host as politely as one process: every worker gets 1/N of a host's
    concurrency (rounded up, at least 1; 0 stays 0) and waits N times its delay."""
    count = settings.getint("WORKER_COUNT", 1)
    if count <= 1:
        return
    for name in ("CONCURRENT_REQUESTS_PER_DOMAIN", "CONCURRENT_REQUESTS_PER_IP"):
        if settings.get(name) is not None and (limit := settings.getint(name)) > 0:
            _replace(settings, name, max(1, math.ceil(limit / count)))
    _replace(settings, "DOWNLOAD_DELAY", settings.getfloat("DOWNLOAD_DELAY") * count)
    target = settings.getfloat("AUTOTHROTTLE_TARGET_CONCURRENCY")
    _replace(settings, "AUTOTHROTTLE_TARGET_CONCURRENCY", target / count)


def _replace(settings: BaseSettings, name: str, value: object) -> None:
    """Set ``name`` at the priority of the value it replaces (a user's ``-s`` included)."""
    settings.set(name, value, priority=max(settings.getpriority(name) or 0, DEFAULT))


class ProjectAddon:
    """Installs the project's defaults, components, profile and rendering (module docstring)."""

    def update_settings(self, settings: BaseSettings) -> None:
        install_defaults(settings)
        ProfileAddon().update_settings(settings)
        RenderAddon().update_settings(settings)
        share_politeness(settings)
