"""`scrapy runs` as a user runs it: the run list, one run in detail, and its error messages."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crawler.commands.runs import duration
from crawler.demo.server import DemoSite
from crawler.stats import RunCounts
from crawler.storage import open_store
from tests.support import run_contained, run_on_terminal, scrapy_env, scrapy_here

pytestmark = pytest.mark.timeout(90)


here = scrapy_here


def cells(line: str) -> list[str]:
    """The cells of a plain-text table line (columns are at least two spaces apart)."""
    return re.split(r" {2,}", line.strip())


def one_line_error(done: subprocess.CompletedProcess[str], status: int) -> str:
    assert done.returncode == status, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    return line


@pytest.fixture(scope="module")
def crawled(demo_site: DemoSite, tmp_path_factory: pytest.TempPathFactory, crawl_in: Any) -> Path:
    workdir = tmp_path_factory.mktemp("runs")
    done = crawl_in(
        workdir, "products", "-a", f"start_url={demo_site.url}", "-a", "max_products=20"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return Path(done.db)


def run_row(db: Path) -> sqlite3.Row:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row: sqlite3.Row = conn.execute("SELECT * FROM runs ORDER BY id DESC").fetchone()
        return row


@pytest.mark.timeout(180)
def test_list_is_aligned_text_when_piped(crawled: Path, tmp_path: Path) -> None:
    done = run_contained(
        [sys.executable, "-m", "scrapy", "runs", "--db", str(crawled)], cwd=tmp_path,
        env=scrapy_env(), capture_output=True, text=True, timeout=80, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    header, line = done.stdout.splitlines()
    assert header.split() == [
        "id", "spider", "started", "(UTC)", "duration", "finish", "reason", "pages", "items",
        "rejects", "errors", "exit",
    ]  # fmt: skip
    run = run_row(crawled)
    assert cells(line) == [
        str(run["id"]), "products", run["started_at"][:19].replace("T", " "), duration(dict(run)),
        "finished", str(run["pages"]), str(run["items"]), str(run["rejects"]),
        str(run["errors"]), "0",
    ]  # fmt: skip
    assert header.index("pages") + len("pages") == line.index(str(run["pages"])) + len(
        str(run["pages"])
    )  # numbers right-aligned under their header


@pytest.mark.timeout(180)
def test_list_is_a_table_on_a_terminal(crawled: Path, tmp_path: Path) -> None:
    status, text = run_on_terminal(
        [sys.executable, "-m", "scrapy", "runs", "--db", str(crawled)],
        cwd=tmp_path,
        columns=140,
        stdout=True,
    )
    assert status == 0
    assert "\x1b[1m" in text  # rich's bold header
    assert "finish reason" in text
    assert "products" in text


@pytest.mark.timeout(180)
def test_one_run_in_detail(crawled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_row(crawled)
    done = here(capsys, "runs", str(run["id"]), "--db", str(crawled))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"run {run['id']}: products"
    assert lines[3] == "  finish       finished (exit status 0)"
    assert lines[4] == "  profile      fast"
    assert lines[5] == (
        f"  counts       pages {run['pages']}, items {run['items']}, rejects {run['rejects']},"
        f" duplicates {run['duplicates']}, errors {run['errors']}"
    )
    assert "arguments:" in lines
    assert any(line.split() == ["max_products", "20"] for line in lines)
    stats = lines[lines.index("stats:") + 1 :]
    names = [line.split()[0] for line in stats]
    assert names == sorted(names)
    assert "item_scraped_count" in names
    assert "finish_reason" in names


def two_runs(db: Path) -> None:
    store = open_store(db)
    first = store.start_run("products", arguments={}, profile="polite", settings={})
    store.finish_run(
        first, reason="finished", counts=RunCounts(10, 8, 1, 0, 2), exit_status=0, stats={}
    )
    store.start_run("site", arguments={"depth": 2}, profile=None, settings={})  # never finished
    store.close()


@pytest.mark.timeout(60)
def test_limit_spider_and_unfinished_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    two_runs(db)
    newest = here(capsys, "runs", "--db", str(db), "--limit", "1").stdout.splitlines()
    assert len(newest) == 2
    assert cells(newest[1])[:2] == ["2", "site"]
    assert cells(newest[1])[3:] == ["-", "(unfinished)", "-", "-", "-", "-", "-"]
    products = here(capsys, "runs", "--db", str(db), "--spider", "products").stdout.splitlines()
    assert len(products) == 2
    assert cells(products[1])[:2] == ["1", "products"]
    assert cells(products[1])[4:] == ["finished", "10", "8", "1", "2", "0"]
    none = here(capsys, "runs", "--db", str(db), "--spider", "shop")
    assert (none.returncode, none.stdout) == (0, "")
    assert none.stderr == f"no runs of spider 'shop' recorded in {db}\n"
    detail = here(capsys, "runs", "2", "--db", str(db)).stdout.splitlines()
    assert detail[2] == "  finished     - UTC (-)"
    assert detail[3] == "  finish       (unfinished) (exit status -)"


def test_durations_read_well() -> None:
    start = "2026-11-25T12:00:00.000+00:00"
    assert duration({"started_at": start, "finished_at": "2026-11-25T12:00:06.250+00:00"}) == (
        "6.2 s"
    )
    assert duration({"started_at": start, "finished_at": "2026-11-25T12:03:05+00:00"}) == (
        "3 m 05 s"
    )
    assert duration({"started_at": start, "finished_at": "2026-11-25T14:03:00+00:00"}) == (
        "2 h 03 m"
    )
    assert duration({"started_at": start, "finished_at": None}) == "-"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["7"], 1, "error: no run 7 in {db} (see `scrapy runs`)"),
        (["one"], 2, "error: run id must be a whole number of at least 1, not 'one'"),
        (["1", "2"], 2, "error: give at most one run id: scrapy runs [ID]"),
        (["--limit", "0"], 2, "error: --limit must be a whole number of at least 1, not '0'"),
    ],
)
def test_bad_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    status: int,
    message: str,
) -> None:
    db = tmp_path / "store.sqlite"
    two_runs(db)
    done = here(capsys, "runs", *args, "--db", str(db))
    assert one_line_error(done, status) == message.format(db=db)


@pytest.mark.timeout(60)
def test_missing_or_foreign_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.sqlite"
    done = here(capsys, "runs", "--db", str(missing))
    assert one_line_error(done, 1) == (
        f"error: {missing}: no store there (does not exist); run a crawl first or give --db"
    )
    assert not missing.exists()
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    done = here(capsys, "runs", "--db", str(other))
    assert one_line_error(done, 1) == (
        f"error: {other}: the file has no runs table (not a crawler store?)"
    )


@pytest.mark.timeout(60)
def test_reading_never_migrates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.sqlite"
    two_runs(db)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE export_cursors")
        conn.execute("PRAGMA user_version = 1")
    assert here(capsys, "runs", "--db", str(db)).returncode == 0
    assert here(capsys, "runs", "1", "--db", str(db)).returncode == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "export_cursors" not in tables
