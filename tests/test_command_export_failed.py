"""`scrapy export --failed RUN -o FILE`: the failed URLs of a run as a seed file, round trip."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from crawler.storage import open_store
from crawler.storage.failures import FailedPage, write_failures
from tests.faultserver import FaultServer
from tests.support import run_contained, run_crawl_in, scrapy_env, scrapy_here

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def store_with_run(db: Path, urls: list[str]) -> int:
    """A run whose failed_pages rows are ``urls`` (in this order, repeats kept)."""
    store = open_store(db)
    run_id = store.start_run("pages", arguments={}, profile=None, settings={})
    pages = [FailedPage(u, "127.0.0.1", 404, "http_404", None, "2026-12-01") for u in urls]
    write_failures(store.conn, run_id, pages, [])
    store.close()
    return run_id


def export_failed(
    capsys: pytest.CaptureFixture[str], db: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return scrapy_here(capsys, "export", *args, "--db", str(db), cwd=db.parent)


def one_error(done: subprocess.CompletedProcess[str], status: int) -> str:
    assert done.returncode == status, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    return line


def test_round_trip(faults: FaultServer, tmp_path: Path) -> None:
    """crawl with failures → export --failed (the real CLI) → pages -a urls= fetches them."""
    failing = [
        faults.url("/status?code=404&trip=1"),
        faults.url("/status?code=500&trip=1"),
        faults.url("/page?sleep=5&trip=1"),  # past DOWNLOAD_TIMEOUT: TimeoutError
    ]
    good = [faults.url(f"/page?title=Good{n}&trip=1") for n in range(3)]
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("\n".join([*good, *failing]) + "\n", encoding="utf-8")
    first = run_crawl_in(
        tmp_path, "pages", "-a", f"urls={seeds}", "-s", "DOWNLOAD_TIMEOUT=1", "-s", "RETRY_TIMES=0"
    )
    (run,) = first.rows("SELECT id FROM runs")
    assert {r["url"] for r in first.rows("SELECT url FROM failed_pages")} == set(failing)

    out = tmp_path / "urls.txt"
    done = run_contained(
        [sys.executable, "-m", "scrapy", "export", "--failed", str(run["id"]), "-o", str(out),
         "--db", str(first.db)],
        cwd=tmp_path, env=scrapy_env(), timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().startswith(f"exported 3 failed URLs of run {run['id']} to ")
    exported = out.read_text(encoding="utf-8").splitlines()
    in_order = [r["url"] for r in first.rows("SELECT url FROM failed_pages ORDER BY id")]
    assert exported == in_order
    assert sorted(exported) == sorted(failing)

    before = len(faults.hits())
    second = run_crawl_in(tmp_path, "pages", "-a", f"urls={out}", "-s", "RETRY_TIMES=0")
    fetched = {h.target for h in faults.hits()[before:] if h.path != "/robots.txt"}
    assert fetched == {url.split(str(faults.ports["main"]), 1)[1] for url in failing}
    second_run = max(r["id"] for r in second.rows("SELECT id FROM runs"))
    stored = second.rows("SELECT url FROM pages WHERE last_run_id = ?", second_run)
    assert {r["url"] for r in stored} == set(failing)


def test_distinct_in_first_failure_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = ["http://a.test/3", "http://a.test/1", "http://a.test/3", "http://a.test/2"]
    run_id = store_with_run(tmp_path / "crawler.sqlite", urls)
    store_with_run(tmp_path / "crawler.sqlite", ["http://other.test/run"])
    out = tmp_path / "failed.txt"
    done = export_failed(
        capsys, tmp_path / "crawler.sqlite", "--failed", str(run_id), "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "http://a.test/3\nhttp://a.test/1\nhttp://a.test/2\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".failed.txt")]


def test_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = store_with_run(tmp_path / "crawler.sqlite", ["http://a.test/x"])
    done = export_failed(capsys, tmp_path / "crawler.sqlite", "--failed", str(run_id), "-o", "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "http://a.test/x\n"


def test_run_without_failures_gives_an_empty_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "crawler.sqlite"
    run_id = store_with_run(db, [])
    out = tmp_path / "urls.txt"
    out.write_text("http://stale.test/from-an-earlier-export\n")
    done = export_failed(capsys, db, "--failed", str(run_id), "-o", str(out))
    assert one_error(done, 0) == f"run {run_id} had no failed pages: wrote an empty {out}"
    assert out.read_text() == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--failed", "99", "-o", "x.txt"], "error: no run 99 in "),
        (["--failed", "seven", "-o", "x.txt"], "error: --failed 'seven' is not a run id"),
        (["--failed", "1"], "error: give the output with -o FILE"),
        (["pages", "--failed", "1", "-o", "x.txt"], "error: give a TABLE or --failed RUN, not"),
        (["--failed", "1", "-o", "x.txt", "--fields", "url"], "error: --failed writes a URL list"),
        (["--failed", "1", "-o", "x.csv", "--run", "1"], "error: --failed writes a URL list"),
    ],
)
def test_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    db = tmp_path / "crawler.sqlite"
    store_with_run(db, ["http://a.test/x"])
    line = one_error(export_failed(capsys, db, *args), 2)
    assert line.startswith(message), line
    assert not (tmp_path / "x.txt").exists()


def test_store_older_than_failed_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "crawler.sqlite"
    run_id = store_with_run(db, [])
    store = open_store(db)
    store.conn.execute("DROP TABLE failed_pages")  # as a store before migration 7
    store.close()
    line = one_error(export_failed(capsys, db, "--failed", str(run_id), "-o", "x.txt"), 1)
    assert "older than failed-page recording" in line
