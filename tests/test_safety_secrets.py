"""U2 (docs/faults.md): one secret policy for every place that prints or stores settings.

One real crawl gets a secret-looking value for every name of ``SECRET_NAMES`` (as ``-s``
settings, inside a dict setting, as spider arguments, and as the password of a URL); each name's
clear value must then appear nowhere: not in the crawl's log (DEBUG), not in the ``runs`` row
(settings, arguments, stats, failure), not in ``scrapy runs ID`` (also for a row recorded in
clear by an older version), and not in any file the crawl left (SQLite with its WAL, CSV).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from crawler.arguments import Arg
from crawler.demo.server import DemoSite
from crawler.spiders.pages import PagesSpider
from crawler.storage import open_store
from tests.support import CrawlResult, run_crawl_in, scrapy_here

# Every kind of secret-looking name: -s NAME=value for each.
SECRET_NAMES = [
    "DB_PASS", "DB_PASSWORD", "SMTP_PASSWD", "db_pass", "APP_SECRET", "GITHUB_TOKEN",
    "API_KEY", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "SIGNING_PRIVATE_KEY",
    "GCS_CREDENTIALS", "SERVICE_CREDENTIAL", "BASIC_AUTH", "SESSION_COOKIE", "LOGIN_SESSION",
    "PRIVATE_CERT", "SENTRY_DSN",
]  # fmt: skip
# Spider arguments named like secrets (declared by the spider below).
SECRET_ARGUMENTS = ["api_key", "db_password", "auth_token", "session_id"]
# Secrets that are not in a secret-named setting: a URL's password, a header in a dict setting.
URL_SECRET = "CACHE_URL"  # -s CACHE_URL=redis://user:VALUE@127.0.0.1:6379/0
HEADER_SECRET = "DEFAULT_REQUEST_HEADERS"  # {"Authorization": "Bearer VALUE"}
EVERY_CASE = [*SECRET_NAMES, *SECRET_ARGUMENTS, URL_SECRET, HEADER_SECRET]


def clear_value(name: str) -> str:
    return f"zq{EVERY_CASE.index(name):02d}-s3cr3t-{name.lower()}"


class SecretArgumentsSpider(PagesSpider):
    """``pages`` with arguments named like secrets (a user's spider would declare such)."""

    name = "secret_arguments"
    arguments_spec: ClassVar[dict[str, Arg]] = {
        **PagesSpider.arguments_spec,
        **{name: Arg(str, help="a secret") for name in SECRET_ARGUMENTS},
    }


@dataclass
class SecretCrawl:
    result: CrawlResult
    workdir: Path
    run: dict[str, Any]
    files: dict[str, bytes]  # every file the crawl left, as it left it
    dump: str  # the store's SQL dump (what the WAL held too)
    runs_output: str  # `scrapy runs ID`
    legacy_output: str  # `scrapy runs ID` of a row an older version recorded in clear


@pytest.fixture(scope="module")
def secret_crawl(
    demo_site: DemoSite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecretCrawl]:
    workdir = tmp_path_factory.mktemp("secrets")
    settings = [f"{name}={clear_value(name)}" for name in SECRET_NAMES]
    settings.append(f"{URL_SECRET}=redis://cacheuser:{clear_value(URL_SECRET)}@127.0.0.1:6379/0")
    headers = {"Authorization": f"Bearer {clear_value(HEADER_SECRET)}"}
    settings.append(f"{HEADER_SECRET}={json.dumps(headers)}")
    arguments = [f"{name}={clear_value(name)}" for name in SECRET_ARGUMENTS]
    result = run_crawl_in(
        workdir, SecretArgumentsSpider.name, "-a", f"url={demo_site.url}",
        *(part for a in arguments for part in ("-a", a)),
        *(part for s in settings for part in ("-s", s)),
        "-s", f"SPIDER_MODULES={__name__}", "-s", "LOG_LEVEL=DEBUG",
        "-s", "ROBOTSTXT_OBEY=False", timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    files = {str(f): f.read_bytes() for f in workdir.rglob("*") if f.is_file()}
    with sqlite3.connect(result.db) as conn:
        dump = "\n".join(conn.iterdump())
    (row,) = result.rows("SELECT * FROM runs")
    run = dict(row)
    runs_output = _runs_detail(result.db, run["id"])
    # a row recorded in clear (before one policy covered the runs table): shown masked
    legacy = workdir / "legacy.sqlite"
    store = open_store(str(legacy))
    clear = {name: clear_value(name) for name in SECRET_NAMES}
    clear[URL_SECRET] = f"redis://cacheuser:{clear_value(URL_SECRET)}@127.0.0.1:6379/0"
    clear[HEADER_SECRET] = headers  # type: ignore[assignment]
    legacy_id = store.start_run(
        "pages",
        arguments={name: clear_value(name) for name in SECRET_ARGUMENTS},
        profile="fast",
        settings=clear,
    )
    store.close()
    legacy_output = _runs_detail(legacy, legacy_id)
    legacy.unlink()
    for extra in legacy.parent.glob("legacy.sqlite-*"):
        extra.unlink()
    yield SecretCrawl(result, workdir, run, files, dump, runs_output, legacy_output)


def _runs_detail(db: Path, run_id: int) -> str:
    done = scrapy_here(_Capture(), "runs", str(run_id), "--db", str(db))  # type: ignore[arg-type]
    assert done.returncode == 0, done.stderr
    return done.stdout


class _Capture:
    """What ``scrapy_here`` needs of pytest's capsys, for use in a module-scoped fixture."""

    def __init__(self) -> None:
        import io
        import sys

        self._sys = sys
        self._out, self._err = io.StringIO(), io.StringIO()
        self._saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self._out, self._err

    def readouterr(self) -> tuple[str, str]:
        self._sys.stdout, self._sys.stderr = self._saved
        return self._out.getvalue(), self._err.getvalue()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", EVERY_CASE)
def test_u2_a_secret_value_is_stored_and_printed_nowhere(
    secret_crawl: SecretCrawl, name: str
) -> None:
    c, secret = secret_crawl, clear_value(name)
    run = c.run
    # the crawl really used the values: masked, but recorded
    recorded = json.loads(run["arguments"] if name in SECRET_ARGUMENTS else run["settings"])
    assert name in recorded, recorded
    assert "***" in json.dumps(recorded[name]), recorded[name]
    places = {
        "log (stderr)": c.result.stderr,
        "stdout": c.result.stdout,
        "runs.settings": str(run["settings"]),
        "runs.arguments": str(run["arguments"]),
        "runs.stats": str(run["stats"]),
        "runs.failure": str(run["failure"]),
        "`scrapy runs ID`": c.runs_output,
        "`scrapy runs ID` of a row recorded in clear": c.legacy_output,
    }
    assert name in c.runs_output and name in c.legacy_output
    assert [place for place, text in places.items() if secret in text] == []
    assert any(f.endswith(".csv") for f in c.files) and any(f.endswith(".sqlite") for f in c.files)
    assert [f for f, data in c.files.items() if secret.encode() in data] == []
    assert secret not in c.dump
