"""Shared fixtures: the demo site and fault sockets on 127.0.0.1, and a `scrapy crawl` runner."""

from __future__ import annotations

import csv
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crawler.demo.server import DemoSite

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def demo_site() -> Iterator[DemoSite]:
    """The demo shop, shared by the session (its hit counter is shared too)."""
    with DemoSite(slow_seconds=0.3) as site:
        yield site


@pytest.fixture
def fresh_demo_site() -> Iterator[DemoSite]:
    """A demo shop of the test's own, for tests that count hits."""
    with DemoSite(slow_seconds=0.3) as site:
        yield site


@pytest.fixture
def refused_url() -> str:
    """A URL on a port that was bound and closed again: connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/refused"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A URL whose server accepts the connection and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/silent"


@dataclass
class CrawlResult:
    returncode: int
    stdout: str
    stderr: str
    db: Path
    out: Path

    def rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        with sqlite3.connect(self.db) as conn:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, params).fetchall()

    def csv_files(self) -> list[Path]:
        return sorted(self.out.rglob("*.csv"))

    def csv_rows(self) -> list[dict[str, str]]:
        (path,) = self.csv_files()
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))


def scrapy_env() -> dict[str, str]:
    return dict(os.environ, SCRAPY_SETTINGS_MODULE="crawler.settings", PYTHONPATH=str(ROOT))


@pytest.fixture
def run_crawl(tmp_path: Path) -> Any:
    """Run `scrapy crawl SPIDER ARGS…` in a subprocess with the store and CSV under tmp_path."""

    def run(spider: str, *args: str, profile: str = "fast", timeout: float = 120) -> CrawlResult:
        db, out = tmp_path / "crawler.sqlite", tmp_path / "out"
        command = [
            sys.executable, "-m", "scrapy", "crawl", spider, *args,
            "-s", f"SQLITE_PATH={db}", "-s", f"CSV_EXPORT_DIR={out}",
            "-s", f"CRAWL_PROFILE={profile}",
        ]  # fmt: skip
        done = subprocess.run(
            command, cwd=tmp_path, env=scrapy_env(), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        return CrawlResult(done.returncode, done.stdout, done.stderr, db, out)

    return run
