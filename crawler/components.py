"""Component priority dicts (``DOWNLOADER_MIDDLEWARES``, ``EXTENSIONS``…) that add, never replace.

Scrapy merges only its own ``*_BASE`` dicts with a project's; the project's components and a
profile's are added by ``add_components``, so a user's dict of the same name adds to them and a
component is switched off only by naming it with ``None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy.settings import SETTINGS_PRIORITIES

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrapy.settings import BaseSettings

DEFAULT = SETTINGS_PRIORITIES["default"]


def component_path(component: Any) -> str:
    """A component's import path, whether it is given as a class or as its path."""
    if isinstance(component, str):
        return component
    return f"{component.__module__}.{component.__qualname__}"


def add_components(settings: BaseSettings, name: str, table: Mapping[str, int | None]) -> None:
    """Add each component of ``table`` that ``settings[name]`` does not mention yet.

    The setting keeps its priority; a key of the user's dict, given as a class or a path, always
    wins (``None`` too). Download handlers are keyed by scheme, which compares as it is.
    """
    current = settings.getdict(name)
    named = {component_path(key) for key in current}
    missing = {key: value for key, value in table.items() if key not in named}
    if missing:
        settings.set(name, {**current, **missing}, priority=settings.getpriority(name) or DEFAULT)
