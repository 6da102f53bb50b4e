"""Find the browser to render with, and the launch options that make it work here.

Chromium (scrapy-playwright's default ``PLAYWRIGHT_BROWSER_TYPE``): ``PLAYWRIGHT_LAUNCH_OPTIONS``'s
``executable_path``, else Debian's ``/usr/bin/chromium`` (the default here: ``playwright install``
needs a download), else ``chromium``, ``chromium-browser`` or ``google-chrome`` on PATH, else the
Chromium ``playwright install chromium`` put in ``PLAYWRIGHT_BROWSERS_PATH`` (or
``~/.cache/ms-playwright``). Firefox and WebKit: only Playwright's own builds drive, so the
configured executable, else the one ``playwright install firefox|webkit`` put there.
"""

from __future__ import annotations

import os
import shutil
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.exceptions import ArgumentError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scrapy.settings import BaseSettings

DEBIAN_CHROMIUM = "/usr/bin/chromium"
# A candidate meaning: the browser `playwright install` downloaded (see playwright_browsers_dir).
PLAYWRIGHT_INSTALLED = "<playwright install>"
CANDIDATES = (
    DEBIAN_CHROMIUM,
    "chromium",
    "chromium-browser",
    "google-chrome",
    PLAYWRIGHT_INSTALLED,
)
BROWSER_CANDIDATES: dict[str, Sequence[str]] = {
    "chromium": CANDIDATES,
    "firefox": (PLAYWRIGHT_INSTALLED,),
    "webkit": (PLAYWRIGHT_INSTALLED,),
}
# Playwright's layouts (old and new) under its browsers directory, preferred first; a glob is
# read rather than asking Playwright, which would start its driver (and an event loop).
PLAYWRIGHT_EXECUTABLES = {
    "chromium": (
        "chromium-*/chrome-linux64/chrome",
        "chromium-*/chrome-linux/chrome",
        "chromium_headless_shell-*/chrome-headless-shell-linux64/chrome-headless-shell",
        "chromium_headless_shell-*/chrome-linux/headless_shell",
    ),
    "firefox": ("firefox-*/firefox/firefox",),
    "webkit": ("webkit-*/pw_run.sh",),
}
INSTALL_HINT = (
    "install one with `apt-get install chromium` (Debian/Ubuntu, as root) or `playwright install "
    "chromium` (a download), or point "
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


def browser_type(settings: BaseSettings) -> str:
    """``PLAYWRIGHT_BROWSER_TYPE`` (chromium by default, as in scrapy-playwright), checked."""
    name = str(settings.get("PLAYWRIGHT_BROWSER_TYPE") or "chromium")
    if name not in PLAYWRIGHT_EXECUTABLES:
        raise BrowserNotFoundError(
            f"PLAYWRIGHT_BROWSER_TYPE={name!r} is not a browser Playwright drives: "
            "choose chromium, firefox or webkit"
        )
    return name


def playwright_browsers_dir() -> Path:
    """Where `playwright install` puts browsers: ``PLAYWRIGHT_BROWSERS_PATH`` or its cache."""
    configured = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if configured == "0":  # inside the installed playwright package
        spec = find_spec("playwright")  # found, not imported
        places = list(spec.submodule_search_locations or ()) if spec else []
        package = Path(places[0]) if places else Path("playwright")
        return package / "driver" / "package" / ".local-browsers"
    if configured:
        return Path(configured).absolute()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ms-playwright"


def _revision(executable: Path, root: Path) -> int:
    """1255 for ``<root>/chromium-1255/…``; -1 when the directory carries no number."""
    number = executable.relative_to(root).parts[0].rpartition("-")[2]
    return int(number) if number.isdigit() else -1


def playwright_installed(kind: str) -> list[str]:
    """Executables `playwright install` left for ``kind``: preferred layout, newest first."""
    root = playwright_browsers_dir()
    found: list[str] = []
    for pattern in PLAYWRIGHT_EXECUTABLES[kind]:
        paths = [p for p in root.glob(pattern) if p.is_file() and os.access(p, os.X_OK)]
        found += [str(p) for p in sorted(paths, key=lambda p: _revision(p, root), reverse=True)]
    return found


def _executable(path: str) -> str | None:
    found = shutil.which(path)
    return str(Path(found).resolve()) if found and Path(found).is_file() else None


def _candidate(candidate: str, kind: str) -> str | None:
    if candidate == PLAYWRIGHT_INSTALLED:
        installed = playwright_installed(kind)
        return installed[0] if installed else None
    if found := _executable(candidate):
        return candidate if Path(candidate).is_absolute() else found
    return None


def find_browser(
    configured: str | None, candidates: Sequence[str] = CANDIDATES, kind: str = "chromium"
) -> str:
    """The configured executable, else the first candidate found; ``BrowserNotFoundError``."""
    title = "Chromium" if kind == "chromium" else kind
    if configured:
        if _executable(configured):
            return configured
        hint = INSTALL_HINT if kind == "chromium" else f"`playwright install {kind}` installs one"
        raise BrowserNotFoundError(
            f"rendering needs {title}, but {configured!r} (PLAYWRIGHT_LAUNCH_OPTIONS "
            f"executable_path) is not an executable file: {hint}"
        )
    for candidate in candidates:
        if found := _candidate(candidate, kind):
            return found
    if kind == "chromium":
        raise BrowserNotFoundError(
            f"rendering needs Chromium and none was found ({DEBIAN_CHROMIUM}, on PATH or in "
            f"Playwright's {playwright_browsers_dir()}): {INSTALL_HINT}"
        )
    raise BrowserNotFoundError(
        f"PLAYWRIGHT_BROWSER_TYPE={kind} needs Playwright's {kind}, and none is installed in "
        f"{playwright_browsers_dir()}: run `playwright install {kind}` (it downloads the browser; "
        "where downloads are impossible, render with Chromium: PLAYWRIGHT_BROWSER_TYPE=chromium)"
    )


def uses_remote_browser(settings: BaseSettings) -> bool:
    return bool(settings.get("PLAYWRIGHT_CDP_URL") or settings.get("PLAYWRIGHT_CONNECT_URL"))


def launch_options(
    settings: BaseSettings, candidates: Sequence[str] | None = None
) -> dict[str, Any]:
    """``PLAYWRIGHT_LAUNCH_OPTIONS`` completed: executable, headless, our Chromium arguments.

    ``candidates``: where to look (default: ``BROWSER_CANDIDATES`` of the browser type).
    """
    kind = browser_type(settings)
    options = dict(settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS"))
    if uses_remote_browser(settings):
        return options
    if candidates is None:
        candidates = BROWSER_CANDIDATES[kind]
    options["executable_path"] = find_browser(options.get("executable_path"), candidates, kind)
    options.setdefault("headless", True)
    if kind != "chromium":
        return options
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
