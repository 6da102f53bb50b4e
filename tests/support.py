"""Helpers shared by the tests: running `scrapy crawl` in a subprocess and reading its output."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scrapy.cmdline import execute

ROOT = Path(__file__).resolve().parent.parent


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


def run_crawl_in(
    workdir: Path, spider: str, *args: str, profile: str = "fast", timeout: float = 150
) -> CrawlResult:
    """Run `scrapy crawl SPIDER ARGS…` in a subprocess with the store and CSV under workdir."""
    db, out = workdir / "crawler.sqlite", workdir / "out"
    command = [
        sys.executable, "-m", "scrapy", "crawl", spider, *args,
        "-s", f"SQLITE_PATH={db}", "-s", f"CSV_EXPORT_DIR={out}",
        "-s", f"CRAWL_PROFILE={profile}",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=workdir, env=scrapy_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    return CrawlResult(done.returncode, done.stdout, done.stderr, db, out)


def scrapy_here(
    capsys: pytest.CaptureFixture[str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``scrapy ARGS`` run by Scrapy's own entry point in this process: the same command code
    as a subprocess, without a second or more of start-up per call (most tests make several)."""
    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as exited:
        patch.setenv("SCRAPY_SETTINGS_MODULE", "crawler.settings")
        if cwd is not None:
            patch.chdir(cwd)
        execute(["scrapy", *args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), int(exited.value.code or 0), out, err)
