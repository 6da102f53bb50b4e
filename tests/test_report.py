"""The HTML run report (crawler.report): what it reads from the store and what a person sees.

Stores are made by the store's own code (open_store + migrations) with rows as the crawl's
components write them; reports are opened in headless Chromium, every request routed through a
check, and a screenshot is taken and measured.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from crawler.report import ReportConfig, build_history_report, build_run_report
from crawler.report.data import load_run
from crawler.storage import open_store
from crawler.storage.reads import open_readonly
from crawler.storage.schema import MIGRATIONS
from tests.reportpages import add_run, external_references, look_at

pytestmark = [pytest.mark.timeout(120), pytest.mark.xdist_group("browser")]

RUN_SECTIONS = (
    "Summary", "Checks across runs", "Throughput over time", "Responses", "Status codes",
    "Download latency", "Errors", "Rejected items", "Field coverage", "Top hosts",
    "HTTP and browser", "Snapshots",
)  # fmt: skip


def config(db: Path, tmp_path: Path) -> ReportConfig:
    return ReportConfig(
        db=str(db), report_dir=str(tmp_path / "reports"), snapshot_dir=str(tmp_path / "snaps")
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Three good runs, one of other arguments, then a run whose price coverage fell to 10%."""
    db = tmp_path / "crawler.sqlite"
    for _ in range(3):
        add_run(db)
    add_run(db, arguments={"start_url": "http://other.test/"}, price_filled=0)
    add_run(db, price_filled=10, exit_status=1, failure="quality: price coverage 10% vs 100%")
    return db


def test_run_report_has_every_section_escaped_and_offline(store: Path, tmp_path: Path) -> None:
    path = build_run_report(config(store, tmp_path), None, None)
    assert path == tmp_path / "reports" / "run-5.html"
    text = path.read_text(encoding="utf-8")
    for heading in RUN_SECTIONS:
        assert f">{heading}" in text, heading
    assert text.count("<svg") >= 9
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # a reject reason, escaped
    assert "cdn.&lt;b&gt;evil&lt;/b&gt;.test" in text  # a host, escaped
    assert external_references(text) == []
    # the snapshot links are relative paths to the files under SNAPSHOT_DIR
    assert 'href="../snaps/run-5/0002-http_404.html"' in text
    assert "quality: price coverage 10% vs 100%" in text and "FAILED (exit 1)" in text
    assert list((tmp_path / "reports").iterdir()) == [path]  # no part file left


def test_run_report_renders_in_chromium(store: Path, tmp_path: Path) -> None:
    path = build_run_report(config(store, tmp_path), 5, str(tmp_path / "r.html"))
    look = look_at(path, tmp_path / "report.png")
    assert look.console_errors == []
    assert look.requests == [path.resolve().as_uri()]  # the file itself, nothing else
    for heading in RUN_SECTIONS:
        assert any(h.startswith(heading) for h in look.headings), (heading, look.headings)
    assert look.svgs >= 9
    assert look.colours > 50, look.colours  # charts in several colours, text anti-aliased
    assert look.inked > 0.05, look.inked  # not a blank page


def test_samples_are_summed_over_workers_and_coverage_compared(store: Path) -> None:
    with closing(open_readonly(store)) as conn:
        data = load_run(conn, 5)
    last = data.samples[-1]
    assert (last["elapsed"], last["pages"], last["items"]) == (100.0, 100.0, 100.0)  # 2 x 50
    assert last["in_flight"] == 8  # a gauge, summed too
    assert data.coverage["products"]["price"] == (10, 100)
    assert data.previous == [3, 2, 1]  # not run 4 (other arguments), not run 5 itself
    assert data.previous_coverage["products"]["price"] == 1.0
    assert dict(data.errors) == {"http_404": 2, "TimeoutError": 1}
    assert dict(data.error_hosts) == {"shop.test": 2, "down.test": 1}
    assert dict(data.rejects)["price: missing"] == 2
    kinds = {s["kind"] for s in data.snapshots}
    assert kinds == {"failed page", "rejected item"}


def test_run_shorter_than_the_sampling_interval_has_its_line(tmp_path: Path) -> None:
    """One final sample at close (a 3 s crawl, 5 s interval): drawn from 0 at the start."""
    db = tmp_path / "crawler.sqlite"
    run_id = add_run(db, extras=False)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "INSERT INTO run_samples (run_id, at, elapsed, pages, items)"
            " VALUES (?, '', 3.5, 70, 7)",
            (run_id,),
        )
        conn.commit()
    with closing(open_readonly(db)) as conn:
        points = load_run(conn, run_id).samples
    assert [(p["elapsed"], p["pages"], p["items"]) for p in points] == [(0, 0, 0), (3.5, 70, 7)]
    text = build_run_report(config(db, tmp_path), run_id, None).read_text(encoding="utf-8")
    assert 'aria-label="pages and items per second"' in text and "no samples" not in text


def test_history_report_compares_the_last_runs(store: Path, tmp_path: Path) -> None:
    path = build_history_report(config(store, tmp_path), "products", 4, None)
    assert path.name == "products-last-4.html"
    text = path.read_text(encoding="utf-8")
    for run_id in (2, 3, 4, 5):
        assert f"run {run_id}" in text
    assert "run 1<" not in text
    assert "10.0%" in text and "100.0%" in text  # products.price in run 5 and before
    look = look_at(path, tmp_path / "history.png")
    assert look.console_errors == [] and look.requests == [path.resolve().as_uri()]
    assert {"Runs", "Pages and items", "Field coverage"} <= set(look.headings)
    assert look.svgs >= 4 and look.inked > 0.05


def test_unfinished_run_says_so(tmp_path: Path) -> None:
    db = tmp_path / "crawler.sqlite"
    add_run(db, finished=False, extras=False)
    text = build_run_report(config(db, tmp_path), 1, None).read_text(encoding="utf-8")
    assert "UNFINISHED" in text and "no finish time" in text
    assert "no samples: the run was killed (or is still running) before its first sample" in text
    assert "the run recorded no stats (it was killed or is still running)" in text


def test_killed_run_says_so(tmp_path: Path) -> None:
    """A run whose process is gone (its pid no longer lives on this host) is shown killed."""
    db = tmp_path / "crawler.sqlite"
    run_id = add_run(db, finished=False, extras=False)
    store = open_store(db)
    store.start_worker(run_id, 0)
    store.conn.execute("UPDATE run_workers SET pid = ?", (dead_pid(),))
    store.close()
    text = build_run_report(config(db, tmp_path), run_id, None).read_text(encoding="utf-8")
    assert "KILLED" in text and "killed (its processes are gone, last seen" in text
    assert "no samples: the run was killed" in text


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_empty_run_says_what_is_missing(tmp_path: Path) -> None:
    db = tmp_path / "crawler.sqlite"
    add_run(db, items=0, extras=False)
    text = build_run_report(config(db, tmp_path), 1, None).read_text(encoding="utf-8")
    assert "no samples: the run was recorded before samples existed" in text
    assert "no field coverage: the run stored no items" in text
    assert "no rejects" in text and "no snapshots kept" in text


def test_store_of_an_older_version_is_read_as_it_is(tmp_path: Path) -> None:
    """A store at schema 6 (before the report's tables): the report says what is missing and
    the store is not migrated (it is opened read-only)."""
    db = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(db)) as conn:
        for script in MIGRATIONS[:6]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 6")
        conn.execute(
            "INSERT INTO runs (spider, arguments, started_at, finished_at, finish_reason, pages,"
            " items, exit_status, stats) VALUES ('products', '{}', '2026-01-01T00:00:00+00:00',"
            " '2026-01-01T00:01:00+00:00', 'finished', 3, 2, 0, '{}')"
        )
        conn.commit()
    text = build_run_report(config(db, tmp_path), None, None).read_text(encoding="utf-8")
    assert "this store (schema 6) was written before run_samples existed" in text
    assert "run a crawl with this version to upgrade the store" in text
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 6
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "run_samples" not in tables
