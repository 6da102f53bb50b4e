"""The project's components are added to a user's dicts, never replaced by them (issue 10, item 4).

A Scrapy user adds ``DOWNLOADER_MIDDLEWARES = {"myproject.mw.Foo": 543}`` at the end of the
settings file, or ``SPIDER_MIDDLEWARES`` in a spider's ``custom_settings``: the robots.txt,
safety, compression and politeness middlewares, and the ``fast`` profile's lazy start, stay.
Switching one of ours off takes an explicit ``None``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from scrapy import Spider
from scrapy.settings import Settings
from scrapy.utils.conf import build_component_list
from scrapy.utils.test import get_crawler

from crawler import defaults
from crawler import settings as project_settings
from crawler.demo.server import DemoSite
from tests.support import ROOT, run_contained, scrapy_env, scrapy_here

OURS = [
    "crawler.middlewares.reservednames.ReservedNamesMiddleware",
    "crawler.middlewares.targets.PrivateTargetMiddleware",
    "crawler.middlewares.robots.RobotsTxtMiddleware",
    "crawler.middlewares.retryafter.RetryAfterMiddleware",
    "crawler.middlewares.circuitbreaker.CircuitBreakerMiddleware",
    "crawler.middlewares.compression.StrictHttpCompressionMiddleware",
]
LAZY_START = "crawler.middlewares.lazystart.LazyStartMiddleware"

USER_MIDDLEWARES = '''
import logging

class Foo:
    """A user's downloader middleware: marks every request it sees."""

    def process_request(self, request):
        request.headers["X-Foo"] = "1"
        logging.getLogger("usermw").info("Foo saw %s", request.url)
        return None


class Bar:
    """A user's spider middleware."""

    def process_spider_output(self, response, result):
        yield from result

    async def process_spider_output_async(self, response, result):
        async for item in result:
            yield item
'''

USER_SETTINGS = """
from crawler.settings import *  # the project's settings file, as a user's own project would be

# the usual Scrapy habit: one's own components at the end of the settings file
DOWNLOADER_MIDDLEWARES = {
    "usermw.Foo": 543,
    "crawler.middlewares.circuitbreaker.CircuitBreakerMiddleware": None,
}
SPIDER_MIDDLEWARES = {"usermw.Bar": 50}
"""


def enabled(log: str, kind: str) -> list[str]:
    """The component list Scrapy logs at start-up as 'Enabled <kind>:'."""
    found = re.search(rf"Enabled {kind}:\n(\[.*?\])", log, re.S)
    assert found, f"no 'Enabled {kind}' in the log"
    return [name.strip().strip("'\"") for name in found.group(1).strip("[]").split(",")]


def test_user_settings_file_adds_to_the_project_components(tmp_path: Path) -> None:
    (tmp_path / "usermw.py").write_text(USER_MIDDLEWARES)
    (tmp_path / "usersettings.py").write_text(USER_SETTINGS)
    env = scrapy_env() | {
        "SCRAPY_SETTINGS_MODULE": "usersettings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    with DemoSite() as site:
        command = [
            sys.executable, "-m", "scrapy", "crawl", "pages", "-a", f"url={site.url}",
            "-s", f"SQLITE_PATH={tmp_path / 'crawler.sqlite'}",
            "-s", f"CSV_EXPORT_DIR={tmp_path / 'out'}", "-s", "CRAWL_PROFILE=fast",
        ]  # fmt: skip
        done = run_contained(command, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    downloader = enabled(done.stderr, "downloader middlewares")
    assert "usermw.Foo" in downloader
    for ours in OURS:
        if ours.endswith("CircuitBreakerMiddleware"):
            assert ours not in downloader, "None must switch a project component off"
        else:
            assert ours in downloader
    assert "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware" not in downloader
    spider = enabled(done.stderr, "spider middlewares")
    assert "usermw.Bar" in spider and LAZY_START in spider
    assert "Foo saw" in done.stderr and "/robots.txt" in done.stderr


class SpiderWithOwnMiddlewares(Spider):
    name = "own"
    custom_settings: ClassVar[dict[str, Any]] = {
        "SPIDER_MIDDLEWARES": {"tests.test_settings_components.Nothing": 50},
        "DOWNLOADER_MIDDLEWARES": {"tests.test_settings_components.Nothing": 543},
    }


class Nothing:
    pass


def project(**overrides: Any) -> dict[str, Any]:
    """The project settings file, as ``get_crawler`` takes it (the test run's reactor stays)."""
    process_level = {"TWISTED_REACTOR", "TWISTED_DNS_RESOLVER"}
    values = {k: v for k, v in vars(project_settings).items() if k.isupper()}
    return {k: v for k, v in values.items() if k not in process_level} | overrides


def components(settings: Settings, name: str) -> list[str]:
    return [str(c) for c in build_component_list(settings.getwithbase(name))]


def test_spider_custom_settings_keep_the_profile_and_project_components() -> None:
    crawler = get_crawler(SpiderWithOwnMiddlewares, project(CRAWL_PROFILE="fast"))
    spider_mws = components(crawler.settings, "SPIDER_MIDDLEWARES")
    assert LAZY_START in spider_mws
    assert "tests.test_settings_components.Nothing" in spider_mws
    downloader = components(crawler.settings, "DOWNLOADER_MIDDLEWARES")
    assert set(OURS) <= set(downloader)
    assert "tests.test_settings_components.Nothing" in downloader


def test_none_switches_off_a_profile_component_and_a_pipeline() -> None:
    crawler = get_crawler(
        Spider,
        project(
            CRAWL_PROFILE="fast",
            SPIDER_MIDDLEWARES={LAZY_START: None},
            ITEM_PIPELINES={"crawler.pipelines.csv_file.CsvPipeline": None, "x.Mine": 700},
        ),
    )
    assert LAZY_START not in components(crawler.settings, "SPIDER_MIDDLEWARES")
    pipelines = components(crawler.settings, "ITEM_PIPELINES")
    assert "crawler.pipelines.csv_file.CsvPipeline" not in pipelines
    assert pipelines[-1] == "x.Mine" and "crawler.pipelines.sqlite.SQLitePipeline" in pipelines


def test_user_settings_win_over_project_defaults() -> None:
    crawler = get_crawler(Spider, project(SQLITE_BATCH_SIZE=7, DOWNLOAD_MAXSIZE=1))
    assert crawler.settings.getint("SQLITE_BATCH_SIZE") == 7
    assert crawler.settings.getint("DOWNLOAD_MAXSIZE") == 1
    assert crawler.settings.get("CSV_FILENAME") == defaults.CSV_FILENAME


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--get", "CONCURRENT_REQUESTS", "-s", "CRAWL_PROFILE=fast"], "100"),
        (["--get", "SQLITE_BATCH_SIZE"], str(defaults.SQLITE_BATCH_SIZE)),
        (["--get", "SQLITE_BATCH_SIZE", "-s", "SQLITE_BATCH_SIZE=9"], "9"),
    ],
)
def test_settings_command_shows_what_the_crawl_uses(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    done = scrapy_here(capsys, "settings", *args, cwd=ROOT)
    assert done.stdout.strip() == expected, done.stderr


def test_settings_command_lists_the_project_components(
    capsys: pytest.CaptureFixture[str],
) -> None:
    done = scrapy_here(capsys, "settings", "--get", "DOWNLOADER_MIDDLEWARES", cwd=ROOT)
    assert set(OURS) <= set(json.loads(done.stdout))
