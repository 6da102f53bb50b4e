"""Durability faults D1–D8 (docs/faults.md) with real `scrapy crawl` processes and signals.

Every crawl here is a ``python -m scrapy`` subprocess on the demo shop: stopped with SIGINT,
killed with SIGKILL at random moments, run twice at once, starved of disk space, fed a poison
request, or pointed at a store whose frontier table is not ours. After each fault the same
command is run again and the store is compared with an uninterrupted crawl's.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from crawler.demo.server import DemoSite
from tests.support import CrawlResult, _die_with_parent, scrapy_env

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.timeout(240)

# the fields of a product that a crawl extracts (not the run ids and times it was seen)
PRODUCT_FIELDS = "sku, name, price, currency, in_stock, rating, category, description, url"
# small item batches, so that a kill often lands while one is being written (D4)
BATCHES = ("-s", "SQLITE_BATCH_SIZE=5", "-s", "SQLITE_BATCH_SECONDS=0.2")


def products_args(site: DemoSite) -> tuple[str, ...]:
    return ("products", "-a", f"start_url={site.url}")


def rows(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def products(db: Path) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in rows(db, f"SELECT {PRODUCT_FIELDS} FROM products ORDER BY sku")]


def integrity(db: Path) -> str:
    return str(rows(db, "PRAGMA integrity_check")[0][0])


def frontier_counts(db: Path) -> dict[str, int]:
    found = {"queued": 0, "leased": 0, "done": 0, "failed": 0}
    for row in rows(db, "SELECT state, count(*) AS n FROM frontier GROUP BY state"):
        found[row["state"]] = row["n"]
    return found


def crawl_command(workdir: Path, *argv: str, store_dir: Path | None = None) -> list[str]:
    db, out = (store_dir or workdir) / "crawler.sqlite", workdir / "out"
    return [
        sys.executable, "-m", "scrapy", "crawl", *argv,
        "-s", f"SQLITE_PATH={db}", "-s", f"CSV_EXPORT_DIR={out}", "-s", "CRAWL_PROFILE=fast",
    ]  # fmt: skip


class Crawl:
    """A `scrapy crawl` subprocess whose output goes to files (the test reads them at the end)."""

    def __init__(
        self,
        workdir: Path,
        *argv: str,
        name: str = "crawl",
        preexec: Callable[[], None] | None = None,
        pythonpath: Path | None = None,
        store_dir: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.db = (store_dir or workdir) / "crawler.sqlite"
        self.log = workdir / f"{name}-{time.monotonic_ns()}.log"
        self._err = self.log.open("w")

        def before_exec() -> None:
            if preexec is not None:
                preexec()
            _die_with_parent()  # after preexec: a change of user clears it

        env = scrapy_env()
        if pythonpath is not None:
            env["PYTHONPATH"] += f"{os.pathsep}{pythonpath}"
        self.proc = subprocess.Popen(
            crawl_command(workdir, *argv, store_dir=store_dir), cwd=workdir, env=env,
            stdout=subprocess.DEVNULL, stderr=self._err, text=True, start_new_session=True,
            preexec_fn=before_exec,
        )  # fmt: skip

    def wait_for(self, check: Callable[[], bool], timeout: float = 60) -> None:
        """Until ``check()`` holds (sqlite errors while the store is created count as no)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                status, end = self.proc.returncode, self.stderr[-3000:]
                pytest.fail(f"the crawl ended (status {status}) too early:\n{end}")
            try:
                if check():
                    return
            except sqlite3.Error:
                pass
            time.sleep(0.05)
        self.kill()
        pytest.fail("the crawl never got far enough")

    def signal(self, number: int) -> None:
        os.kill(self.proc.pid, number)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self._err.close()

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def run_to_end(workdir: Path, *argv: str, **kw: Any) -> CrawlResult:
    crawl = Crawl(workdir, *argv, **kw)
    status = crawl.wait()
    return CrawlResult(status, "", crawl.stderr, crawl.db, workdir / "out")


NOBODY = 65534


def as_nobody() -> None:
    """In the child: drop root, whose writes no directory permission stops."""
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def nobody_can_run_python() -> bool:
    try:
        subprocess.run(
            [sys.executable, "-c", "import scrapy"], preexec_fn=as_nobody, capture_output=True,
            check=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def runs(db: Path) -> list[sqlite3.Row]:
    return rows(db, "SELECT * FROM runs ORDER BY id")


def latest_run(db: Path) -> int:
    return int(rows(db, "SELECT coalesce(max(run_id), 0) AS n FROM run_workers")[0]["n"])


@pytest.fixture(scope="module")
def reference(demo_site: DemoSite, tmp_path_factory: pytest.TempPathFactory) -> CrawlResult:
    """An uninterrupted `products` crawl of the whole demo shop, in a store of its own."""
    workdir = tmp_path_factory.mktemp("reference")
    done = run_to_end(workdir, *products_args(demo_site))
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(products(done.db)) > 900
    return done


def assert_same_products_once(db: Path, reference: CrawlResult) -> None:
    found = products(db)
    skus = [row[0] for row in found]
    assert len(skus) == len(set(skus)), "duplicate products"
    urls = [r["url"] for r in rows(db, "SELECT url FROM products")]
    assert len(urls) == len(set(urls)), "duplicate product urls"
    expected = products(reference.db)
    missing = {row[0] for row in expected} - set(skus)
    extra = set(skus) - {row[0] for row in expected}
    assert not missing and not extra, (sorted(missing)[:10], sorted(extra)[:10])
    assert found == expected


# --- D1: one SIGINT, then the same command again ------------------------------------------------
def test_sigint_then_the_same_command_resumes(
    tmp_path: Path, demo_site: DemoSite, reference: CrawlResult
) -> None:
    argv = (*products_args(demo_site), "-s", "CONCURRENT_REQUESTS=4")
    first = Crawl(tmp_path, *argv, name="first")
    first.wait_for(lambda: frontier_counts(first.db)["done"] >= 300)
    first.signal(signal.SIGINT)
    assert first.wait() == 1, first.stderr[-3000:]
    (run1,) = runs(first.db)
    assert (run1["finish_reason"], run1["exit_status"]) == ("shutdown", 1)
    after_first = frontier_counts(first.db)
    assert after_first["leased"] == 0, after_first  # a clean stop gives its leases back
    assert after_first["queued"] > 0 and after_first["done"] >= 300, after_first
    assert integrity(first.db) == "ok"

    fetched_by_first = {
        urlsplit(r["url"]).path
        for r in rows(first.db, "SELECT url FROM frontier WHERE state = 'done'")
    }
    hits_before = collections.Counter(demo_site.hits)

    second = run_to_end(tmp_path, *argv, name="second")
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"Frontier: resuming the crawl of run {run1['id']} (job {run1['job_id']})" in (
        second.stderr
    )
    run2 = runs(second.db)[1]
    assert (run2["finish_reason"], run2["exit_status"]) == ("finished", 0)
    assert run2["job_id"] == run1["job_id"]
    assert_same_products_once(second.db, reference)
    # the second run fetched only what the first had not done (the site counts hits by path
    # without the query: product pages tell)
    fetched_by_second = {p for p in demo_site.hits - hits_before if p.startswith("/products/")}
    assert fetched_by_second and not fetched_by_second & fetched_by_first
    (full,) = runs(reference.db)
    assert run2["pages"] < full["pages"]
    assert run1["pages"] + run2["pages"] == full["pages"] + 1, (run1["pages"], run2["pages"])
    assert frontier_counts(second.db)["queued"] == frontier_counts(second.db)["leased"] == 0


# --- D2 and D4: kill -9 at random moments, rerun each time ----------------------------------------
KILLS = 10


def test_kill_9_at_random_moments_then_rerun_until_finished(
    tmp_path: Path, demo_site: DemoSite, reference: CrawlResult
) -> None:
    argv = (*products_args(demo_site), "-s", "CONCURRENT_REQUESTS=4", *BATCHES)
    chance = random.Random(13)
    total = frontier_counts(reference.db)["done"]
    # moments spread over the crawl: after this many requests are done (in all runs so far),
    # plus a random delay of up to 0.3 s
    marks = sorted(chance.sample(range(0, int(total * 0.85)), KILLS))
    killed_runs: list[int] = []
    hits_before = collections.Counter(demo_site.hits)
    for number, mark in enumerate(marks):
        before = latest_run(tmp_path / "crawler.sqlite") if number else 0
        crawl = Crawl(tmp_path, *argv, name=f"killed-{number}")

        def far_enough(crawl: Crawl = crawl, before: int = before, mark: int = mark) -> bool:
            return latest_run(crawl.db) > before and frontier_counts(crawl.db)["done"] >= mark

        crawl.wait_for(far_enough)
        time.sleep(chance.uniform(0, 0.3))
        assert crawl.proc.poll() is None, f"kill {number} came too late: the crawl ended"
        crawl.signal(signal.SIGKILL)
        assert crawl.wait() == -signal.SIGKILL
        killed_runs.append(latest_run(crawl.db))
        (job,) = rows(crawl.db, "SELECT state FROM frontier_jobs")
        assert job["state"] == "open", (
            f"kill {number} came after the crawl had finished: {frontier_counts(crawl.db)}"
        )
        assert integrity(crawl.db) == "ok", f"after kill {number}"  # D4

    last = run_to_end(tmp_path, *argv, name="last")
    assert last.returncode == 0, last.stderr[-3000:]
    failed = rows(last.db, "SELECT url, attempts, error FROM frontier WHERE state = 'failed'")
    fetched = demo_site.hits - hits_before
    never_sent = [r["url"] for r in failed if not fetched[urlsplit(r["url"]).path]]
    assert not failed, (
        f"{len(failed)} requests failed, e.g. {[tuple(r) for r in failed[:3]]};"
        f" {len(never_sent)} of them never reached the site"
    )
    assert "Frontier: resuming the crawl of run" in last.stderr
    assert integrity(last.db) == "ok"
    every = runs(last.db)
    assert [r["id"] for r in every[:-1]] == killed_runs
    for run in every[:-1]:
        assert (run["finish_reason"], run["exit_status"]) == ("killed", 1), dict(run)
    assert (every[-1]["finish_reason"], every[-1]["exit_status"]) == ("finished", 0)
    assert len({r["job_id"] for r in every}) == 1  # one job, resumed each time
    assert_same_products_once(last.db, reference)
    left = frontier_counts(last.db)
    assert left["queued"] == left["leased"] == 0, left
    (job,) = rows(last.db, "SELECT state FROM frontier_jobs")
    assert job["state"] == "finished"
    # each request is in the frontier once
    fingerprints = rows(
        last.db, "SELECT count(*) AS n, count(DISTINCT fingerprint) AS d FROM frontier"
    )
    assert fingerprints[0]["n"] == fingerprints[0]["d"]


# --- D5: the same crawl twice at once ---------------------------------------------------------
def test_a_second_crawl_of_the_same_job_is_refused(tmp_path: Path, demo_site: DemoSite) -> None:
    argv = (*products_args(demo_site), "-a", "max_products=150", "-s", "CONCURRENT_REQUESTS=1")
    first = Crawl(tmp_path, *argv, name="first")
    first.wait_for(lambda: latest_run(first.db) >= 1 and frontier_counts(first.db)["done"] >= 1)
    second = run_to_end(tmp_path, *argv, name="second")
    still_running = first.proc.poll() is None
    assert first.wait() == 0, first.stderr[-3000:]
    assert still_running, "the first crawl ended before the second started: make it slower"
    assert second.returncode != 0
    lines = [line for line in second.stderr.splitlines() if "already crawling" in line]
    assert len(lines) == 1, second.stderr[-3000:]
    assert "products with these arguments is already crawling as run 1" in lines[0]
    assert "Traceback" not in second.stderr
    first_run, refused_run = runs(first.db)
    assert (first_run["finish_reason"], first_run["exit_status"]) == ("finished", 0)
    assert (refused_run["finish_reason"], refused_run["exit_status"]) == ("already_running", 1)
    assert frontier_counts(first.db)["queued"] == 0


# --- D6: disk full, read-only directory ---------------------------------------------------------
def limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_fails_cleanly_and_the_rerun_completes(
    tmp_path: Path, demo_site: DemoSite, reference: CrawlResult
) -> None:
    argv = (*products_args(demo_site), *BATCHES, "-s", "CSV_ENABLED=False")
    full = run_to_end(tmp_path, *argv, name="full", preexec=limit_file_size(1_000_000))
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Traceback" not in full.stderr, full.stderr[-5000:]
    assert "Closing spider (store_error)" in full.stderr
    assert "Crawl store_error in " in full.stderr
    errors = [line for line in full.stderr.splitlines() if "] ERROR: " in line]
    assert errors and "Frontier: cannot write" in errors[0], errors
    assert integrity(full.db) == "ok"
    (run,) = runs(full.db)
    # the run row cannot be finished on a full disk: the next crawl reaps it
    assert run["finish_reason"] in (None, "store_error"), dict(run)
    assert len(products(full.db)) < len(products(reference.db))

    again = run_to_end(tmp_path, *argv, name="again")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Frontier: resuming the crawl of run 1" in again.stderr
    assert_same_products_once(again.db, reference)
    first = runs(again.db)[0]
    assert first["finish_reason"] in ("killed", "store_error") and first["exit_status"] == 1
    assert integrity(again.db) == "ok"


def test_read_only_directory_is_a_clear_error_and_the_rerun_resumes(
    demo_site: DemoSite, reference: CrawlResult
) -> None:
    """The store's directory made read-only (chmod 0555) after a first partial run. Root
    ignores directory permissions: run as root, the crawls run as user nobody."""
    root = os.geteuid() == 0
    if root and not nobody_can_run_python():
        pytest.skip(
            "running as root, which ignores directory permissions, and user nobody cannot run"
            f" {sys.executable} (its interpreter is in a directory only root can enter)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="durability-readonly-"))  # tmp_path is root's only
    try:
        store_dir = workdir / "store"
        store_dir.mkdir()
        workdir.chmod(0o755)
        if root:
            os.chown(workdir, NOBODY, NOBODY)
            os.chown(store_dir, NOBODY, NOBODY)
        argv = (*products_args(demo_site), "-s", "CONCURRENT_REQUESTS=4", "-s", "CSV_ENABLED=False")
        options: dict[str, Any] = {"store_dir": store_dir, "preexec": as_nobody if root else None}
        first = Crawl(workdir, *argv, name="first", **options)
        first.wait_for(lambda: frontier_counts(first.db)["done"] >= 200)
        first.signal(signal.SIGINT)
        assert first.wait() == 1, first.stderr[-3000:]
        assert not list(store_dir.glob("*-wal"))  # closed cleanly: the next open must create it
        store_dir.chmod(0o555)
        try:
            refused = run_to_end(workdir, *argv, name="refused", **options)
        finally:
            store_dir.chmod(0o755)
        assert refused.returncode != 0, refused.stderr[-3000:]
        assert "Traceback" not in refused.stderr, refused.stderr[-5000:]
        errors = [line for line in refused.stderr.splitlines() if "] ERROR: " in line]
        assert errors and str(first.db) in errors[0], errors
        assert integrity(first.db) == "ok"
        again = run_to_end(workdir, *argv, name="again", **options)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "Frontier: resuming the crawl of run 1" in again.stderr
        assert_same_products_once(again.db, reference)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- poison requests ---------------------------------------------------------------------------
POISON_SPIDER = """
import scrapy


class Poison(scrapy.Spider):
    name = "poison"
    start_urls = [{base!r} + "about", {base!r} + "slow", {base!r} + "legacy"]

    def parse(self, response):
        if response.url.endswith("/about"):
            raise ValueError("poison page: this callback always fails")
        yield {{"url": response.url, "title": response.css("title::text").get()}}
"""


@pytest.fixture
def slow_site() -> Iterator[DemoSite]:
    """A demo shop whose /slow page takes long enough to be in flight when its crawl dies."""
    with DemoSite(slow_seconds=8) as site:
        yield site


def test_poison_request_is_failed_and_not_fetched_again(
    tmp_path: Path, slow_site: DemoSite
) -> None:
    project = tmp_path / "project"
    (project / "poisonspiders").mkdir(parents=True)
    (project / "poisonspiders" / "__init__.py").write_text("")
    (project / "poisonspiders" / "poison.py").write_text(POISON_SPIDER.format(base=slow_site.url))
    argv = ("poison", "-s", "SPIDER_MODULES=poisonspiders", "-s", "FRONTIER_MAX_ATTEMPTS=2")

    def poisoned_crawl(name: str) -> Crawl:
        return Crawl(tmp_path, *argv, name=name, pythonpath=project)

    # 1st: the poison callback fails, /slow is in flight when the process is killed
    first = poisoned_crawl("first")

    def state_of(path: str) -> sqlite3.Row | None:
        found = rows(first.db, "SELECT * FROM frontier WHERE url LIKE ?", f"%/{path}")
        return found[0] if found else None

    def poisoned_and_slow_in_flight() -> bool:
        poison, slow = state_of("about"), state_of("slow")
        in_flight = slow_site.hits["/slow"] == 1  # the site is answering it (slowly)
        return bool(poison and poison["state"] == "failed" and slow and in_flight)

    first.wait_for(poisoned_and_slow_in_flight)
    first.signal(signal.SIGKILL)
    first.wait()
    poison = state_of("about")
    assert poison is not None
    assert poison["error"].startswith("ValueError: poison page: this callback always fails")
    assert poison["request"] is None
    # 2nd: resumed; /slow leased a second time and killed again
    second = poisoned_crawl("second")
    second.wait_for(
        lambda: (
            latest_run(second.db) >= 2
            and (row := state_of("slow")) is not None
            and row["state"] == "leased"
            and row["attempts"] == 2
            and slow_site.hits["/slow"] == 2  # in flight again
        )
    )
    second.signal(signal.SIGKILL)
    second.wait()
    # 3rd: /slow was leased FRONTIER_MAX_ATTEMPTS times without finishing: failed, not fetched
    third = run_to_end(tmp_path, *argv, name="third", pythonpath=project)
    assert "Frontier: resuming the crawl of run 2" in third.stderr, third.stderr[-3000:]
    assert "1 requests were sent 2 times without finishing" in third.stderr
    (last,) = [r for r in runs(third.db) if r["id"] == 3]
    assert last["finish_reason"] == "finished", dict(last)
    slow = state_of("slow")
    assert slow is not None and slow["state"] == "failed"
    assert slow["error"] == "sent 2 times without finishing"
    assert state_of("about")["state"] == "failed"  # type: ignore[index]
    assert state_of("legacy")["state"] == "done"  # type: ignore[index]
    assert slow_site.hits["/about"] == 1  # the poison request was never fetched again
    assert slow_site.hits["/slow"] == 2  # once per lease, never a third time
    assert frontier_counts(third.db)["queued"] == frontier_counts(third.db)["leased"] == 0


# --- a foreign or corrupt frontier table --------------------------------------------------------
def test_a_foreign_frontier_table_is_a_one_line_error(tmp_path: Path, demo_site: DemoSite) -> None:
    argv = ("site", "-a", f"start_url={demo_site.url}", "-a", "depth=0")
    made = run_to_end(tmp_path, *argv, name="made")
    assert made.returncode == 0, made.stderr[-3000:]
    with contextlib.closing(sqlite3.connect(made.db)) as conn:
        conn.executescript(
            "DROP TABLE frontier;"
            " CREATE TABLE frontier (id INTEGER PRIMARY KEY, url TEXT, state TEXT);"
            " INSERT INTO frontier (url, state) VALUES ('http://example.com/', 'todo');"
        )
    refused = run_to_end(tmp_path, *argv, name="refused")
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr, refused.stderr[-5000:]
    lines = [line for line in refused.stderr.splitlines() if "cannot be used" in line]
    assert len(lines) == 1, refused.stderr[-3000:]
    (line,) = lines
    assert "] ERROR: Frontier" in line and str(made.db) in line, line
    assert "the frontier table is not ours: missing columns attempts, deadline, depth" in line
    assert rows(made.db, "SELECT url, state FROM frontier")[0]["state"] == "todo"  # left alone
    assert runs(made.db)[-1]["exit_status"] != 0


def test_an_unreadable_request_row_is_skipped_and_the_crawl_goes_on(
    tmp_path: Path, demo_site: DemoSite, reference: CrawlResult
) -> None:
    argv = (*products_args(demo_site), "-s", "CONCURRENT_REQUESTS=4")
    first = Crawl(tmp_path, *argv, name="first")
    first.wait_for(lambda: frontier_counts(first.db)["done"] >= 100)
    first.signal(signal.SIGKILL)
    first.wait()
    with contextlib.closing(sqlite3.connect(first.db)) as conn, conn:
        row = conn.execute(
            "SELECT id, job_id, url FROM frontier WHERE state IN ('queued', 'leased')"
            " AND url LIKE '%/products/%' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        assert row is not None
        bad_id, job_id, bad_url = row
        conn.execute("UPDATE frontier SET request = '{\"url\": garbage' WHERE id = ?", (bad_id,))
    again = run_to_end(tmp_path, *argv, name="again")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Frontier: row {bad_id} of job {job_id} skipped: " in again.stderr
    assert "'frontier/bad_rows': 1" in again.stderr
    assert "Traceback" not in again.stderr
    (bad,) = rows(again.db, "SELECT * FROM frontier WHERE id = ?", bad_id)
    assert bad["state"] == "failed" and bad["error"].startswith("unreadable: ")
    assert (runs(again.db)[-1]["finish_reason"]) == "finished"
    # every other product is stored once; the skipped one is missing
    skus = [row[0] for row in products(again.db)]
    assert len(skus) == len(set(skus))
    assert {row[8] for row in products(reference.db)} - {row[8] for row in products(again.db)} <= {
        bad_url
    }
    assert re.search(r"/products/", bad_url)
