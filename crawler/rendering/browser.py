"""Find the Chromium to render with, and the launch options that make it work here."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.exceptions import ArgumentError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scrapy.settings import BaseSettings

DEBIAN_CHROMIUM = "/usr/bin/chromium"
CANDIDATES = (DEBIAN_CHROMIUM, "chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = (
    "install one with `apt-get install chromium` (Debian/Ubuntu, as root), or point "
    "PLAYWRIGHT_LAUNCH_OPTIONS={'executable_path': '/path/to/chromium'} at one"
)
# Quiet, closed-network friendly: no GPU, no background updates or sync, no first-run UI.
DEFAULT_ARGS = (
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


class BrowserNotFoundError(ArgumentError):
    """Rendering was asked for but there is no browser to render with."""


def _executable(path: str) -> str | None:
    found = shutil.which(path)
    return str(Path(found).resolve()) if found and Path(found).is_file() else None


def find_chromium(configured: str | None, candidates: Sequence[str] = CANDIDATES) -> str:
    """The configured executable, else the first candidate found; ``BrowserNotFoundError``."""
    if configured:
        if _executable(configured):
            return configured
        raise BrowserNotFoundError(
            f"rendering needs Chromium, but {configured!r} (PLAYWRIGHT_LAUNCH_OPTIONS "
            f"executable_path) is not an executable file: {INSTALL_HINT}"
        )
    for candidate in candidates:
        if found := _executable(candidate):
            return candidate if Path(candidate).is_absolute() else found
    raise BrowserNotFoundError(
        f"rendering needs Chromium and none was found ({DEBIAN_CHROMIUM} or on PATH): "
        f"{INSTALL_HINT}"
    )


def uses_remote_browser(settings: BaseSettings) -> bool:
    return bool(settings.get("PLAYWRIGHT_CDP_URL") or settings.get("PLAYWRIGHT_CONNECT_URL"))


def launch_options(
    settings: BaseSettings, candidates: Sequence[str] = CANDIDATES
) -> dict[str, Any]:
    """``PLAYWRIGHT_LAUNCH_OPTIONS`` completed: executable, headless, our default arguments."""
    options = dict(settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS"))
    if uses_remote_browser(settings):
        return options
    options["executable_path"] = find_chromium(options.get("executable_path"), candidates)
    options.setdefault("headless", True)
    args = [str(arg) for arg in options.get("args") or []]
    # Chromium refuses to start as root with its sandbox on.
    extra = [*DEFAULT_ARGS, "--no-sandbox"] if os.geteuid() == 0 else list(DEFAULT_ARGS)
    options["args"] = args + [arg for arg in extra if arg not in args]
    return options


def check_browser(settings: BaseSettings, render_argument: str | None = None) -> None:
    """Before a crawl: ``BrowserNotFoundError`` when it will render and has no browser."""
    mode = render_argument or str(settings.get("RENDER_MODE") or "never")
    if mode.strip().lower() != "never" or settings.getbool("RENDER_ENABLED"):
        launch_options(settings)
