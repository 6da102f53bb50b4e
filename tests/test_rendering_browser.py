"""Browser discovery: Debian's Chromium first, then PATH, then a browser Playwright installed.

Playwright's downloads are faked as executable files laid out as `playwright install` lays them
out, under a ``PLAYWRIGHT_BROWSERS_PATH`` in tmp_path; no browser is started.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.settings import Settings

from crawler.rendering.browser import (
    CANDIDATES,
    DEBIAN_CHROMIUM,
    BrowserNotFoundError,
    check_browser,
    launch_options,
    playwright_browsers_dir,
)
from tests.support import scrapy_here

CHROMIUM_FLAGS = {"--disable-gpu", "--no-sandbox", "--disable-background-networking"}


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def browsers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty Playwright browsers directory, and a PATH without any browser on it."""
    root, empty_bin = tmp_path / "ms-playwright", tmp_path / "bin"
    root.mkdir()
    empty_bin.mkdir()
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(root))
    monkeypatch.setenv("PATH", str(empty_bin))
    return root


def without_apt(tmp_path: Path) -> list[str]:
    """The default candidates, with Debian's path replaced by one that does not exist."""
    assert CANDIDATES[0] == DEBIAN_CHROMIUM
    return [str(tmp_path / "usr-bin-chromium"), *CANDIDATES[1:]]


@pytest.mark.parametrize(
    "layout",
    [
        "chromium-1255/chrome-linux64/chrome",
        "chromium-1140/chrome-linux/chrome",
        "chromium_headless_shell-1255/chrome-headless-shell-linux64/chrome-headless-shell",
        "chromium_headless_shell-1140/chrome-linux/headless_shell",
    ],
)
def test_chromium_installed_by_playwright_is_found_without_apt(
    browsers: Path, tmp_path: Path, layout: str
) -> None:
    chrome = executable(browsers / layout)
    options = launch_options(Settings(), without_apt(tmp_path))
    assert options["executable_path"] == str(chrome)
    assert options["headless"] is True and "--disable-gpu" in options["args"]


def test_apt_chromium_stays_the_default(browsers: Path, tmp_path: Path) -> None:
    apt = executable(tmp_path / "usr-bin-chromium")
    executable(browsers / "chromium-1255/chrome-linux64/chrome")
    assert launch_options(Settings(), without_apt(tmp_path))["executable_path"] == str(apt)


def test_full_chromium_then_newest_revision(browsers: Path, tmp_path: Path) -> None:
    executable(browsers / "chromium-1200/chrome-linux64/chrome")
    newest = executable(browsers / "chromium-1255/chrome-linux64/chrome")
    executable(browsers / "chromium_headless_shell-1300/chrome-linux/headless_shell")
    (browsers / "chromium-1400/chrome-linux64").mkdir(parents=True)  # an interrupted download
    assert launch_options(Settings(), without_apt(tmp_path))["executable_path"] == str(newest)


@pytest.mark.parametrize("kind", ["firefox", "webkit"])
def test_firefox_or_webkit_not_installed_is_a_one_line_error(browsers: Path, kind: str) -> None:
    executable(browsers / "chromium-1255/chrome-linux64/chrome")  # a Chromium does not do
    settings = Settings({"PLAYWRIGHT_BROWSER_TYPE": kind})
    with pytest.raises(BrowserNotFoundError) as error:
        launch_options(settings)
    text = str(error.value)
    assert "\n" not in text and f"`playwright install {kind}`" in text and str(browsers) in text
    check_browser(settings)  # never renders: no browser needed
    with pytest.raises(BrowserNotFoundError, match=f"playwright install {kind}"):
        check_browser(settings, "auto")


@pytest.mark.parametrize(
    ("kind", "layout"),
    [("firefox", "firefox-1572/firefox/firefox"), ("webkit", "webkit-2388/pw_run.sh")],
)
def test_firefox_or_webkit_installed_by_playwright(browsers: Path, kind: str, layout: str) -> None:
    found = executable(browsers / layout)
    options = launch_options(
        Settings({"PLAYWRIGHT_BROWSER_TYPE": kind, "PLAYWRIGHT_LAUNCH_OPTIONS": {"args": ["-x"]}})
    )
    assert options["executable_path"] == str(found) and options["headless"] is True
    assert options["args"] == ["-x"]  # Chromium's flags are not given to another browser


@pytest.mark.parametrize("kind", ["chromium", "firefox"])
def test_configured_executable_path_wins(browsers: Path, tmp_path: Path, kind: str) -> None:
    executable(browsers / "chromium-1255/chrome-linux64/chrome")
    executable(browsers / "firefox-1572/firefox/firefox")
    mine = executable(tmp_path / "my-browser")
    settings = Settings(
        {
            "PLAYWRIGHT_BROWSER_TYPE": kind,
            "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": str(mine)},
        }
    )
    assert launch_options(settings)["executable_path"] == str(mine)


def test_unknown_browser_type_is_a_one_line_error() -> None:
    with pytest.raises(BrowserNotFoundError, match="chromium, firefox or webkit") as error:
        launch_options(Settings({"PLAYWRIGHT_BROWSER_TYPE": "chrome"}))
    assert "\n" not in str(error.value)


def test_playwright_browsers_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PLAYWRIGHT_BROWSERS_PATH", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert playwright_browsers_dir() == tmp_path / "cache" / "ms-playwright"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert playwright_browsers_dir() == tmp_path / ".cache" / "ms-playwright"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", "browsers")
    assert playwright_browsers_dir() == tmp_path / "browsers"
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", "0")  # inside the playwright package
    assert playwright_browsers_dir().parts[-4:] == (
        "playwright",
        "driver",
        "package",
        ".local-browsers",
    )


def test_crawl_with_firefox_missing_stops_with_one_line(
    browsers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = scrapy_here(
        capsys, "crawl", "pages", "-a", "url=http://127.0.0.1:9/", "-a", "render=always",
        "-s", "PLAYWRIGHT_BROWSER_TYPE=firefox",
    )  # fmt: skip
    assert done.returncode == 2
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "playwright install firefox" in line
