"""`scrapy report` as a user runs it, the report a crawl writes at close (REPORT_AT_CLOSE), and
`make crawl` printing where its report is; bad input gives one `error:` line."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crawler.demo.crawl import DEMO_PORT, crawl_command, demo_site
from crawler.demo.server import DemoSite
from crawler.storage import open_store
from tests.reportpages import add_run, external_references, look_at
from tests.support import run_contained, scrapy_env, scrapy_here

pytestmark = [pytest.mark.timeout(150), pytest.mark.xdist_group("browser")]

here = scrapy_here


def one_line_error(done: subprocess.CompletedProcess[str], status: int = 2) -> str:
    assert done.returncode == status, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ")
    return line


@pytest.fixture(scope="module")
def crawled(demo_site: DemoSite, tmp_path_factory: pytest.TempPathFactory, crawl_in: Any) -> Any:
    """One real crawl of the demo shop that writes its report at close."""
    workdir = tmp_path_factory.mktemp("report")
    done = crawl_in(
        workdir, "products", "-a", f"start_url={demo_site.url}", "-a", "max_products=20",
        "-s", "REPORT_AT_CLOSE=True", "-s", f"REPORT_DIR={workdir / 'reports'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_crawl_prints_its_report_after_the_summary(crawled: Any, tmp_path: Path) -> None:
    report = Path(crawled.db).parent / "reports" / "run-1.html"
    lines = crawled.stderr.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("Crawl finished in"))
    assert lines.index(f"  report: {report}") > summary  # after the summary and its store line
    text = report.read_text(encoding="utf-8")
    assert external_references(text) == []
    with sqlite3.connect(crawled.db) as conn:  # whatever the crawl's components recorded
        covered = conn.execute("SELECT count(*) FROM field_coverage").fetchone()[0]
        sampled = conn.execute("SELECT count(*) FROM run_samples").fetchone()[0]
    assert re.search(r"products \(\d+ items\)" if covered else "no field coverage: ", text)
    assert ("pages and items per second" if sampled else "no samples: ") in text
    look = look_at(report, tmp_path / "crawl.png")
    assert look.console_errors == []
    assert look.requests == [report.resolve().as_uri()]
    assert {"Summary", "Throughput over time", "Responses", "Field coverage"} <= set(look.headings)
    assert look.svgs >= 2 and look.colours > 50 and look.inked > 0.05


def test_report_command_of_the_crawl(
    crawled: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    done = here(capsys, "report", "--db", str(crawled.db), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "data/reports/run-1.html\n"  # the default: REPORT_DIR, latest run
    text = (tmp_path / "data" / "reports" / "run-1.html").read_text(encoding="utf-8")
    assert "Run 1: products" in text and "<svg" in text
    output = tmp_path / "out" / "mine.html"
    done = here(capsys, "report", "1", "-o", str(output), "--db", str(crawled.db), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"{output}\n")
    assert [p.name for p in output.parent.iterdir()] == ["mine.html"]  # no part file left


def test_last_runs_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "crawler.sqlite"
    for _ in range(3):
        add_run(db)
    add_run(db, spider="pages", arguments={"url": "http://a.test/"})
    done = here(capsys, "report", "--last", "5", "--spider", "products", "--db", str(db),
                cwd=tmp_path)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "data/reports/products-last-5.html\n")
    text = (tmp_path / "data/reports/products-last-5.html").read_text(encoding="utf-8")
    assert "products: the last 3 runs" in text and text.count("<svg") >= 4
    done = here(capsys, "report", "--last", "2", "--db", str(db), cwd=tmp_path)  # latest spider
    assert done.stdout == "data/reports/pages-last-2.html\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["7"], "error: no run 7 in the store (see `scrapy runs`)"),
        (["abc"], "error: run id must be a whole number of at least 1, not 'abc'"),
        (["1", "2"], "error: give at most one run id: scrapy report [RUN] [-o FILE.html]"),
        (["1", "--last", "3"], "error: give a run id or --last N, not both"),
        (["--last", "0"], "error: --last must be a whole number of at least 1, not '0'"),
        (["--spider", "x"], "error: --spider goes with --last N (a run id names its spider)"),
        (["--last", "2", "--spider", "nope"], "error: no runs of spider 'nope' in {db}"
         " (see `scrapy runs`)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "crawler.sqlite"
    add_run(db, extras=False)
    done = here(capsys, "report", *args, "--db", str(db), cwd=tmp_path)
    assert one_line_error(done) == message.format(db=db)
    assert not (tmp_path / "data").exists()


def test_no_store_empty_store_and_not_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.sqlite"
    line = one_line_error(here(capsys, "report", "--db", str(missing), cwd=tmp_path))
    assert (
        line == f"error: {missing}: no store there (does not exist); run a crawl first or give --db"
    )
    assert not missing.exists()  # read-only: never created
    empty = tmp_path / "empty.sqlite"
    open_store(empty).close()
    line = one_line_error(here(capsys, "report", "--db", str(empty), cwd=tmp_path))
    assert line == f"error: no runs recorded in {empty}: run a crawl first"
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    line = one_line_error(here(capsys, "report", "--db", str(other), cwd=tmp_path))
    assert line == f"error: {other}: no runs table (not a crawler store?)"


def test_output_that_cannot_be_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "crawler.sqlite"
    add_run(db, extras=False)
    (tmp_path / "file").write_text("x")
    done = here(capsys, "report", "-o", str(tmp_path / "file" / "r.html"), "--db", str(db))
    line = one_line_error(done, 1)
    assert line.startswith(f"error: cannot write {tmp_path / 'file' / 'r.html'}: ")


def test_report_that_fails_at_close_is_a_warning(
    demo_site: DemoSite, tmp_path: Path, run_crawl: Any
) -> None:
    (tmp_path / "file").write_text("x")
    done = run_crawl(
        "products", "-a", f"start_url={demo_site.url}", "-a", "max_products=3",
        "-s", "REPORT_AT_CLOSE=True", "-s", f"REPORT_DIR={tmp_path / 'file' / 'reports'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if "HTML report of run" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], warnings
    assert "  report: " not in done.stderr


def test_make_crawl_turns_the_report_on() -> None:
    command = crawl_command("http://127.0.0.1:1/", "products", [])
    assert command[command.index("REPORT_AT_CLOSE=True") - 1] == "-s"


@pytest.mark.timeout(150)
def test_demo_crawl_ends_by_printing_its_report(tmp_path: Path) -> None:
    """What `make crawl` runs: its last line says where the report is."""
    done = run_contained(
        [sys.executable, "-m", "crawler.demo", "crawl", "-a", "max_products=10"],
        cwd=tmp_path, env=scrapy_env(), capture_output=True, text=True, timeout=140, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1] == "  report: data/reports/run-1.html"
    assert (tmp_path / "data" / "reports" / "run-1.html").stat().st_size > 10_000


def test_the_demo_crawl_serves_on_its_own_port_or_any_free_one() -> None:
    """`make crawl` twice crawls the same start_url (runs of one crawl, compared by the checks);
    when the port is taken (two demo crawls at once) the site takes any free one."""
    first = demo_site()
    try:
        second = demo_site()
        try:
            ports = {first.port, second.port}
            assert len(ports) == 2 and (DEMO_PORT in ports or first.port != DEMO_PORT)
        finally:
            second.stop()
    finally:
        first.stop()
