"""The live progress line on a terminal (log records print above it, never into it), its bar
and ETA when the total is known, the progress log lines and the status file."""

from __future__ import annotations

import io
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.test import get_crawler

from crawler import stats as keys
from crawler.demo.server import DemoSite
from crawler.extensions.progress import Progress, ProgressConfig
from crawler.spiders.pages import PagesSpider, seed_lines_estimate
from tests.inprocess import crawl_spider_class
from tests.support import (
    Clock,
    CrawlResult,
    run_contained,
    run_crawl_in,
    run_on_terminal,
    scrapy_env,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[[\w.]+\] (INFO|WARNING|ERROR)")


def screen_lines(output: str) -> list[str]:
    """What the terminal showed, line by line: escape codes dropped, each carriage return and
    cursor movement starting a new piece (a piece is what was drawn in one go)."""
    pieces = ANSI.sub("\n", output.replace("\r", "\n"))
    return [line for line in pieces.split("\n") if line.strip()]


@pytest.mark.timeout(120)
def test_log_records_never_run_into_the_progress_line(tmp_path: Path) -> None:
    with DemoSite(slow_seconds=0.3) as site:
        command = [
            sys.executable, "-m", "scrapy", "crawl", "products", "-a", f"start_url={site.url}",
            "-s", f"SQLITE_PATH={tmp_path / 'crawler.sqlite'}",
            "-s", f"CSV_EXPORT_DIR={tmp_path / 'out'}", "-s", "CRAWL_PROFILE=fast",
            "-s", "PROGRESS_TTY_INTERVAL=0.1", "-s", "LOG_LEVEL=INFO",
        ]  # fmt: skip
        status, output = run_on_terminal(
            command, cwd=tmp_path, columns=250, stdout=False, timeout=100
        )
    assert status == 0, output[-2000:]
    lines = screen_lines(output)
    progress = [line for line in lines if "pages/s" in line]
    assert progress, "no progress line was drawn"
    assert any(re.search(r"\d+:\d\d:\d\d elapsed", line) for line in progress)
    warnings = [line for line in lines if "Rejected ProductItem" in line]
    assert len(warnings) == 2, warnings  # the demo shop's two products without a price
    for line in lines:
        record = LOG_RECORD.search(line)
        assert record is None or record.start() == 0, f"log record glued to other text: {line!r}"
    assert "Crawl finished" in output


# --- progress with ETA --------------------------------------------------------------------------
PROGRESS_LINE = re.compile(r"progress: .*\| ([\d,]+)/([\d,]+) \((\d+)%\) \| eta (\d+:\d\d:\d\d|--)")


def progress_of(settings: dict[str, Any], clock: Clock) -> Progress:
    crawler = get_crawler(settings_dict={"PROGRESS_ENABLED": True, **settings})
    return Progress(crawler, ProgressConfig.from_settings(crawler.settings), io.StringIO(), clock)


def test_eta_follows_the_recent_rate_not_the_whole_run_average() -> None:
    clock = Clock(0.0)
    progress = progress_of({}, clock)
    stats = progress.crawler.stats
    assert stats is not None
    stats.set_value(keys.PROGRESS_TOTAL, 10_000)
    stats.set_value(keys.PROGRESS_TOTAL_KNOWN, 1)
    done = 0
    for second in range(1, 121):  # 10 requests/s for a minute, then 1/s
        clock.now = float(second)
        done += 10 if second <= 60 else 1
        stats.set_value(keys.RESPONSES, done)
        stats.set_value("response_received_count", done)
        figures = progress.figures()
    assert figures.done == 660 and figures.total == 10_000
    assert figures.percent == pytest.approx(6.6)
    # the last 30 s went at 1/s: 9,340 s left (the whole run's average, 5.5/s, would say 1,698)
    assert figures.eta_seconds == pytest.approx(9340)
    line = progress.line(figures)
    assert "| 660/10,000 (7%) | eta 2:35:40" in line, line
    assert "1.0 pages/s" in line, line


def test_requests_done_count_errors_304s_and_earlier_runs_once() -> None:
    progress = progress_of({}, Clock(5.0))
    stats = progress.crawler.stats
    assert stats is not None
    for key, value in {
        keys.RESPONSES: 50,  # 404s included: a response that ended its request
        keys.ERROR_RESPONSES: 4,
        keys.FETCH_ERRORS: 7,  # the 4 HTTP errors and 3 without a response
        keys.PROGRESS_ENDED: 3,
        "retry/count": 9,  # attempts, not requests
        keys.NOT_MODIFIED: 6,
        keys.SKIPPED_RECENT: 2,
        keys.PROGRESS_DONE_BEFORE: 100,
        keys.PROGRESS_TOTAL: 200,
        keys.PROGRESS_TOTAL_KNOWN: 1,
    }.items():
        stats.set_value(key, value)
    figures = progress.figures()
    assert figures.done == 50 + 3 + 6 + 2 + 100
    assert figures.percent == pytest.approx(80.5)


def test_no_eta_without_a_known_total_or_in_a_worker() -> None:
    clock = Clock(0.0)
    unknown = progress_of({}, clock)
    worker = progress_of({"WORKER_COUNT": 2, "WORKER_INDEX": 0}, clock)
    for progress in (unknown, worker):
        stats = progress.crawler.stats
        assert stats is not None
        stats.set_value(keys.PROGRESS_TOTAL, 500)  # a resumed crawl that follows links
        stats.set_value(keys.PROGRESS_TOTAL_KNOWN, None if progress is unknown else 1)
        stats.set_value(keys.RESPONSES, 20)
        clock.now += 10
        figures = progress.figures()
        assert figures.total is None and figures.eta_seconds is None
        assert "eta" not in progress.line(figures)


def test_the_total_of_a_url_file_is_counted_without_parsing_it(tmp_path: Path) -> None:
    text = tmp_path / "urls.txt"
    text.write_text("http://a.test/1\nhttp://a.test/2\n\nhttp://a.test/3")  # no final newline
    table = tmp_path / "urls.csv"
    table.write_text("name,url\na,http://a.test/1\nb,http://a.test/2\n")
    assert seed_lines_estimate(str(text)) == 4  # the blank line counts until start() is read
    assert seed_lines_estimate(str(table)) == 2
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert seed_lines_estimate(str(empty)) == 0


class StatusReader(threading.Thread):
    """Reads the status file as often as it can while a crawl runs: every read must parse."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stopped = threading.Event()
        self.seen: list[dict[str, Any]] = []
        self.bad: list[str] = []

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            try:
                self.seen.append(json.loads(text))
            except json.JSONDecodeError:
                self.bad.append(text)
            time.sleep(0.005)


@dataclass
class PagesRun:
    result: CrawlResult
    status: Path
    reader: StatusReader


URLS = 24


@pytest.fixture(scope="module")
def pages_run(tmp_path_factory: pytest.TempPathFactory, crawl_in: Any) -> Iterator[PagesRun]:
    """A pages crawl of a URL file, slow enough for a few progress lines, with a status file
    in a directory that does not exist yet, read from a thread while the crawl runs."""
    workdir = tmp_path_factory.mktemp("progress")
    status = workdir / "dash" / "crawl.json"
    with DemoSite(slow_seconds=0.3, page_delay=0.25) as site:
        urls = workdir / "urls.txt"
        urls.write_text("".join(f"{site.url}products/{n}\n" for n in range(1, URLS + 1)))
        reader = StatusReader(status)
        reader.start()
        try:
            result = crawl_in(
                workdir, "pages", "-a", f"urls={urls}", "--status-file", str(status),
                "-s", "PROGRESS_LOG_INTERVAL=1", "-s", "PROGRESS_STATUS_INTERVAL=0.1",
                "-s", "CONCURRENT_REQUESTS=2", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2",
            )  # fmt: skip
        finally:
            reader.stopped.set()
            reader.join()
    yield PagesRun(result, status, reader)


@pytest.mark.timeout(120)
def test_the_log_line_of_a_url_list_carries_done_total_percent_and_eta(
    pages_run: PagesRun,
) -> None:
    result = pages_run.result
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [m for m in map(PROGRESS_LINE.search, result.stderr.splitlines()) if m]
    assert len(lines) >= 2, result.stderr[-3000:]
    assert {m[2] for m in lines} == {str(URLS)}
    done = [int(m[1]) for m in lines]
    assert done == sorted(done) and done[-1] > 0
    assert any(m[4] != "--" for m in lines)  # an ETA once the rate is known


@pytest.mark.timeout(120)
def test_the_status_file_is_whole_json_at_every_read(pages_run: PagesRun) -> None:
    reader = pages_run.reader
    assert reader.bad == []
    running = [s for s in reader.seen if s["state"] == "running"]
    assert len(running) >= 5, reader.seen[:3]
    assert {s["total"] for s in running if s["total"] is not None} == {URLS}
    assert any(0 < s["done"] < URLS for s in running)
    first = running[0]
    assert first["spider"] == "pages" and first["run_id"] == 1
    for field in ("started_at", "updated_at", "elapsed", "pages", "items", "errors", "rejects",
                  "queue", "in_flight", "pages_per_second", "percent", "eta_seconds"):  # fmt: skip
        assert field in first, field


@pytest.mark.timeout(120)
def test_the_status_file_ends_with_the_final_state(pages_run: PagesRun) -> None:
    final = json.loads(pages_run.status.read_text(encoding="utf-8"))
    assert final["state"] == "closed"
    assert final["finish_reason"] == "finished" and final["exit_status"] == 0
    assert final["items"] == final["done"] == final["total"] == URLS
    assert final["percent"] == 100 and final["eta_seconds"] == 0
    assert final["queue"] == 0 and final["in_flight"] == 0
    assert [p.name for p in pages_run.status.parent.iterdir()] == ["crawl.json"]  # no part file


@pytest.mark.timeout(120)
def test_a_site_crawl_without_sitemap_shows_no_eta(run_crawl: Any, tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    with DemoSite(slow_seconds=0.3, page_delay=0.2) as site:
        result = run_crawl(
            "site", "-a", f"start_url={site.url}catalog/", "-a", "max_pages=12",
            "--status-file", str(status), "-s", "PROGRESS_LOG_INTERVAL=1",
            "-s", "CONCURRENT_REQUESTS=2", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if "progress: " in line]
    assert lines, result.stderr[-3000:]
    assert not any("eta" in line or re.search(r"\d/\d", line) for line in lines), lines
    assert all("| queue " in line for line in lines)
    final = json.loads(status.read_text(encoding="utf-8"))
    assert final["total"] is None and final["eta_seconds"] is None and final["percent"] is None
    assert final["items"] == 12


@pytest.mark.timeout(120)
def test_a_sitemap_gives_the_site_crawl_a_total(run_crawl: Any, tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    with DemoSite(slow_seconds=0.3) as site:
        result = run_crawl(
            "site", "-a", f"start_url={site.url}", "-a", "sitemap=true", "-a", "depth=0",
            "--status-file", str(status),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads(status.read_text(encoding="utf-8"))
    # the start page, robots.txt, the sitemap and the sitemap's URLs: every one answered
    assert final["total"] is not None and final["total"] > 10, final
    assert final["done"] == final["total"] and final["percent"] == 100, final


@pytest.mark.timeout(120)
def test_an_unwritable_status_file_is_one_warning_and_the_crawl_goes_on(
    run_crawl: Any, demo_site: DemoSite, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    result = run_crawl(
        "pages", "-a", f"url={demo_site.url}slow", "-a", f"url={demo_site.url}about",
        "--status-file", str(blocker / "status.json"), "-s", "PROGRESS_STATUS_INTERVAL=0.1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "status file" in line]
    assert len(warnings) == 1, warnings
    assert "WARNING" in warnings[0] and str(blocker / "status.json") in warnings[0]
    assert "Crawl finished" in result.stderr


class StopsHalfWay(PagesSpider):
    """A pages crawl stopped part-way as Ctrl-C would (finish reason ``shutdown``)."""

    urls_file = ""
    stop_after = 0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(urls=self.urls_file, **kwargs)

    def parse(self, response: Any, seed: str) -> Any:
        item = super().parse(response, seed)
        stats = self.crawler.stats
        if self.stop_after and stats.get_value(keys.RESPONSES, 0) >= self.stop_after:
            type(self).stop_after = 0
            deferred_from_coro(self.crawler.engine.close_spider_async(reason="shutdown"))
        return item


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seeded", [False, True], ids=["start-read-again", "seeded"])
def test_a_resumed_frontier_counts_what_earlier_runs_did(tmp_path: Path, seeded: bool) -> None:
    """Seeded (start() read to its end before the stop): the frontier's done + queued rows are
    the total; else start() is read again and its seeds are."""
    with DemoSite(slow_seconds=0.3) as site:
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(f"{site.url}products/{n}\n" for n in range(1, 41)))
        spider = type("Pages", (StopsHalfWay,), {"urls_file": str(urls), "stop_after": 10})
        settings = {
            "RUN_RECORD": True, "CRAWL_PROFILE": "fast", "ROBOTSTXT_OBEY": False,
            "SQLITE_PATH": str(tmp_path / "crawler.sqlite"),
            "CSV_EXPORT_DIR": str(tmp_path / "out"), "CONCURRENT_REQUESTS": 2,
            "PROGRESS_STATUS_FILE": str(tmp_path / "status.json"),
        }  # fmt: skip
        # without the lazy start, start() is read to its end at once: the job is seeded
        first = {**settings, "LAZYSTART_ENABLED": not seeded}
        stopped, log = crawl_spider_class(tmp_path, spider, first)
        assert stopped.stats.get_value("finish_reason") == "shutdown", log
        rest, log = crawl_spider_class(tmp_path, spider, settings)
    assert "Frontier: resuming the crawl" in log
    assert ("start() is not read: it was read before" in log) is seeded, log
    assert rest.stats.get_value(keys.PROGRESS_TOTAL) == 40
    assert rest.stats.get_value(keys.PROGRESS_DONE_BEFORE) >= 10, log
    final = json.loads((tmp_path / "status.json").read_text(encoding="utf-8"))
    assert final["finish_reason"] == "finished", log
    assert final["total"] == final["done"] == 40, final
    assert final["pages"] < 40  # this run's own pages: the rest of the crawl


PLAIN_SPIDER = """
import scrapy


class PlainSpider(scrapy.Spider):
    name = "plain"
    start_urls = ["{url}catalog/"]

    def parse(self, response):
        yield {{"url": response.url}}
"""


@pytest.mark.timeout(120)
def test_status_file_option_of_runspider_for_a_plain_spider(
    demo_site: DemoSite, tmp_path: Path
) -> None:
    (tmp_path / "plain.py").write_text(PLAIN_SPIDER.format(url=demo_site.url))
    status = tmp_path / "status.json"
    done = run_contained(
        [sys.executable, "-m", "scrapy", "runspider", "plain.py", "--status-file", str(status),
         "-s", f"SQLITE_PATH={tmp_path / 'crawler.sqlite'}", "-s", "CSV_ENABLED=False"],
        cwd=tmp_path, env=scrapy_env(), timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    final = json.loads(status.read_text(encoding="utf-8"))
    assert final["spider"] == "plain" and final["state"] == "closed", final
    assert final["items"] == 1 and final["exit_status"] == 0
    assert final["total"] is None and final["eta_seconds"] is None  # a plain spider: no total


@pytest.mark.timeout(120)
def test_the_terminal_shows_a_bar_with_the_total(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    with DemoSite(slow_seconds=0.3, page_delay=0.3) as site:
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(f"{site.url}products/{n}\n" for n in range(1, 13)))
        command = [
            sys.executable, "-m", "scrapy", "crawl", "pages", "-a", f"urls={urls}",
            "--status-file", str(status),
            "-s", f"SQLITE_PATH={tmp_path / 'crawler.sqlite'}",
            "-s", f"CSV_EXPORT_DIR={tmp_path / 'out'}", "-s", "CRAWL_PROFILE=fast",
            "-s", "CONCURRENT_REQUESTS=2", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2",
            "-s", "PROGRESS_TTY_INTERVAL=0.1", "-s", "LOG_LEVEL=WARNING",
        ]  # fmt: skip
        code, output = run_on_terminal(
            command, cwd=tmp_path, columns=200, stdout=False, timeout=100
        )
    assert code == 0, output[-2000:]
    uncoloured = re.sub(r"\x1b\[[0-9;]*m", "", output)  # colours split the bar's segments
    bars = [line for line in screen_lines(uncoloured) if "━" in line]
    assert bars, output[-2000:]
    assert any(re.search(r"\d+/12 .*eta", line) for line in bars), bars[-3:]
    assert any("%" in line for line in bars)
    final = json.loads(status.read_text(encoding="utf-8"))
    assert final["state"] == "closed" and final["total"] == 12


@pytest.mark.timeout(200)
def test_with_workers_the_supervisor_and_each_worker_write_a_status_file(
    tmp_path: Path,
) -> None:
    status = tmp_path / "dash" / "run.json"
    with DemoSite(slow_seconds=0.3, page_delay=0.05) as site:
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(f"{site.url}products/{n}\n" for n in range(1, 31)))
        result = run_crawl_in(
            tmp_path, "pages", "-a", f"urls={urls}", "--status-file", str(status),
            "-s", "WORKERS=2", "-s", "FRONTIER_LEASE_BATCH=2", subprocess=True,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(status.read_text(encoding="utf-8"))
    assert (run["state"], run["finish_reason"], run["exit_status"]) == ("closed", "finished", 0)
    assert run["workers"] == 2 and run["done"] == 30 and run["items"] == 30, run
    assert run["queue"] == 0 and run["total"] is None  # the workers' total: see their files
    workers = [json.loads((status.parent / f"run-w{k}.json").read_text()) for k in (0, 1)]
    assert [w["worker"] for w in workers] == [0, 1]
    assert all(w["state"] == "closed" and w["run_id"] == run["run_id"] for w in workers)
    assert sum(w["items"] for w in workers) == 30
    assert all(w["total"] is None and w["eta_seconds"] is None for w in workers)
