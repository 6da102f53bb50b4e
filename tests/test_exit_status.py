"""The exit status of `scrapy crawl` and the runs row agree, for each way a run can fail."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from crawler.demo.server import DemoSite
from crawler.stats import (
    ERROR_RESPONSES,
    RESPONSES,
    ROBOTS_HOSTS,
    ROBOTS_HOSTS_UNREACHABLE,
    HealthPolicy,
    judge,
)
from tests.support import CrawlResult, run_contained, run_crawl_in, scrapy_env

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def run_crawl(tmp_path: Path) -> Any:
    """`scrapy crawl` in a subprocess: the exit status of the process is what these tests check."""
    return lambda spider, *args, **kw: run_crawl_in(tmp_path, spider, *args, subprocess=True, **kw)


def last_run(result: CrawlResult) -> dict[str, Any]:
    return dict(result.rows("SELECT * FROM runs ORDER BY id DESC LIMIT 1")[0])


def error_lines(result: CrawlResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if "ERROR: run failed: " in line]


# --- the policy on its own ----------------------------------------------------------------------
@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("reason", "stats", "kinds"),
    [
        ("finished", {"item_scraped_count": 10, RESPONSES: 10}, []),
        ("closespider_itemcount", {RESPONSES: 3}, []),
        ("closespider_timeout", {}, ["reason"]),
        ("shutdown", {}, ["reason"]),
        # 9 errors in 9 requests: under the minimum of 10, but every request failed
        ("finished", {"crawl/fetch_errors": 9}, ["errors"]),
        # 4 of 12 responses are 404s counted as errors: 33%, fine
        ("finished", {RESPONSES: 12, ERROR_RESPONSES: 4, "crawl/fetch_errors": 4}, []),
        # 1 of 2 failed: under the minimum request count, not all failed
        ("finished", {RESPONSES: 1, "crawl/fetch_errors": 1}, []),
        ("finished", {RESPONSES: 10, "crawl/fetch_errors": 11}, ["errors"]),
        ("cancelled", {"crawl/fetch_errors": 3}, ["reason", "errors"]),
    ],
)  # fmt: skip
def test_judge(reason: str, stats: dict[str, int], kinds: list[str]) -> None:
    policy = HealthPolicy(ok_reasons=frozenset({"finished", "closespider_itemcount"}))
    verdict = judge(reason, stats, policy)
    assert [failure.split(":")[0] for failure in verdict.failures] == kinds
    assert verdict.exit_status == (1 if kinds else 0)


# --- real crawls ----------------------------------------------------------------------------------
def test_fewer_items_than_the_previous_run_fails(demo_site: DemoSite, run_crawl: Any) -> None:
    args = ["-a", f"start_url={demo_site.url}", "-a", "max_products=6"]
    first = run_crawl("products", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (last_run(first)["exit_status"], last_run(first)["failure"]) == (0, None)
    # A recrawl: product pages answer 304, which count as items kept current (HEALTH_ITEM_STATS).
    again = run_crawl("products", *args)
    assert again.returncode == 0, again.stderr[-2000:]
    baseline = last_run(again)
    assert (baseline["exit_status"], baseline["failure"]) == (0, None)
    # Same spider and arguments, pages fetched in full (no 304s), but every item is now
    # rejected: the silent breakage of a changed site.
    broken = run_crawl(
        "products", *args, "-s", "CONDITIONAL_REVALIDATE=False", "-s", "VALIDATE_MAX_FIELD_CHARS=5"
    )
    assert broken.returncode == 1
    run = last_run(broken)
    # the item count is one of the checks across runs: against the median of the previous runs
    # (a recrawl may count one page fewer: its median is then 5.5)
    expected = [
        re.escape("rejects: all 6 items were rejected, none stored (see the rejects table)"),
        r"quality: 0 items vs (6|5\.5) median of 2 runs \(HEALTH_MIN_ITEM_RATIO is 50%\)",
    ]
    assert re.fullmatch("; ".join(expected), run["failure"]), run["failure"]
    assert (run["exit_status"], run["finish_reason"], run["items"]) == (1, "quality_failed", 0)
    lines = [line.split("run failed: ")[1] for line in error_lines(broken)]
    assert len(lines) == 2 and all(map(re.fullmatch, expected, lines)), lines
    # A third run with other arguments has no previous run to compare with.
    other = run_crawl("products", "-a", f"start_url={demo_site.url}", "-a", "max_products=2")
    assert other.returncode == 0 and last_run(other)["failure"] is None


def test_a_run_that_rejects_every_item_fails_without_a_previous_run(
    demo_site: DemoSite, run_crawl: Any
) -> None:
    """Health for any spider: nothing stored but items rejected is a failed run, first run too."""
    args = ["-a", f"start_url={demo_site.url}", "-a", "max_products=3"]
    result = run_crawl("products", *args, "-s", "VALIDATE_MAX_FIELD_CHARS=5")
    assert result.returncode == 1
    run = last_run(result)
    assert (
        run["failure"] == "rejects: all 3 items were rejected, none stored (see the rejects table)"
    )
    assert (run["exit_status"], run["items"], run["rejects"]) == (1, 0, 3)


@pytest.mark.parametrize(
    ("rejected", "stored", "failure"),
    [
        (0, 10, None),
        (5, 5, None),
        (6, 4, "rejects: 6 of 10 items rejected (60%, HEALTH_MAX_REJECT_RATIO is 50%)"),
        (1, 0, "rejects: all 1 items were rejected, none stored (see the rejects table)"),
    ],
)
def test_reject_ratio(rejected: int, stored: int, failure: str | None) -> None:
    stats = {"validate/rejected": rejected, "item_scraped_count": stored, RESPONSES: 10}
    verdict = judge("finished", stats, HealthPolicy())
    assert verdict.failures == ((failure,) if failure else ())


@pytest.mark.parametrize(("settings", "status"), [([], 1), (["-s", "HEALTH_ENABLED=False"], 0)])
def test_every_request_failing_fails(
    refused_url: str, run_crawl: Any, settings: list[str], status: int
) -> None:
    result = run_crawl("pages", "-a", f"url={refused_url}", *settings)
    assert result.returncode == status, result.stderr[-2000:]
    run = last_run(result)
    assert (run["exit_status"], run["finish_reason"], run["pages"], run["errors"]) == (
        status,
        "finished",
        0,
        1,
    )
    if status:
        assert (
            run["failure"] == "errors: 1 of 1 requests failed (100%, HEALTH_MAX_ERROR_RATIO is 50%)"
        )
        assert len(error_lines(result)) == 1
    else:
        assert run["failure"] is None and not error_lines(result)


@pytest.mark.parametrize(("ratio", "status"), [("0.5", 1), ("0.7", 0)])
def test_error_ratio(
    demo_site: DemoSite, run_crawl: Any, tmp_path: Path, ratio: str, status: int
) -> None:
    good = ["", "catalog/", "about", "legacy"]
    missing = [f"no-such-page-{n}" for n in range(8)]  # 404: 8 of 12 requests fail (67%)
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{demo_site.url}{path}\n" for path in good + missing))
    result = run_crawl("pages", "-a", f"urls={urls}", "-s", f"HEALTH_MAX_ERROR_RATIO={ratio}")
    assert result.returncode == status, result.stderr[-2000:]
    run = last_run(result)
    assert (run["exit_status"], run["errors"], run["items"]) == (status, 8, 12)
    if status:
        assert run["failure"].startswith("errors: 8 of 12 requests failed (67%")


def test_close_reasons(demo_site: DemoSite, run_crawl: Any) -> None:
    start = f"start_url={demo_site.url}"
    # One request at a time with a delay: the 1,000-product site cannot finish in 1 s.
    slow = [
        "-s",
        "CONCURRENT_REQUESTS=1",
        "-s",
        "DOWNLOAD_DELAY=0.5",
        "-s",
        "CLOSESPIDER_TIMEOUT=1",
    ]
    timed_out = run_crawl("products", "-a", start, *slow)
    assert timed_out.returncode == 1
    run = last_run(timed_out)
    assert (run["finish_reason"], run["exit_status"]) == ("closespider_timeout", 1)
    assert run["failure"].startswith("reason: the run ended with 'closespider_timeout'")
    # A configured item cap is a job done (HEALTH_OK_REASONS).
    capped = run_crawl(
        "products", "-a", start, "-a", "max_products=8", "-s", "CLOSESPIDER_ITEMCOUNT=3"
    )
    assert capped.returncode == 0, capped.stderr[-2000:]
    assert (last_run(capped)["finish_reason"], last_run(capped)["exit_status"]) == (
        "closespider_itemcount",
        0,
    )


@pytest.mark.timeout(60)
def test_bad_health_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run_contained(
        [sys.executable, "-m", "scrapy", "crawl", "pages", "-a", "url=http://a.test/",
         "-s", "HEALTH_MAX_ERROR_RATIO=2"],
        cwd=tmp_path, env=scrapy_env(), capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: HEALTH_MAX_ERROR_RATIO must be a number between 0 and 1, not '2'"
    )


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("command", "setting", "message"),
    [
        ("crawl", "ALERT_ON=sometimes", "ALERT_ON"),
        ("crawl", "QUALITY_MAX_COVERAGE_DROP=2", "QUALITY_MAX_COVERAGE_DROP"),
        ("runspider", "HEALTH_MAX_ERROR_RATIO=2", "HEALTH_MAX_ERROR_RATIO"),
        ("runspider", "QUALITY_CHECKS=items,spelling", "QUALITY_CHECKS"),
        ("runspider", "ALERT_TIMEOUT=-1", "ALERT_TIMEOUT"),
    ],
)
def test_bad_verdict_settings_are_one_line_and_exit_2(
    tmp_path: Path, command: str, setting: str, message: str
) -> None:
    spider = tmp_path / "plain.py"
    spider.write_text(
        "import scrapy\n\nclass Plain(scrapy.Spider):\n    name = 'plain'\n"
        "    start_urls = ['http://a.test/']\n"
    )
    target = (
        ["crawl", "pages", "-a", "url=http://a.test/"]
        if command == "crawl"
        else ["runspider", str(spider)]
    )
    done = run_contained(
        [sys.executable, "-m", "scrapy", *target, "-s", setting],
        cwd=tmp_path, env=scrapy_env(), capture_output=True, text=True, timeout=80, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, last
    assert "Traceback" not in done.stderr


# --- a run that fetched nothing -------------------------------------------------------------------
@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("stats", "kinds"),
    [
        # the site never answered: requests went out, no page came back, no item
        ({"scheduler/enqueued": 3, "downloader/request_count": 1}, ["no_pages_fetched"]),
        # robots.txt of every host unreachable: every page disallowed (RFC 9309)
        ({"scheduler/enqueued": 2, ROBOTS_HOSTS: 2, ROBOTS_HOSTS_UNREACHABLE: 2},
         ["robots_unreachable"]),
        # one of two hosts answered its robots.txt but served nothing: still no page
        ({"scheduler/enqueued": 2, ROBOTS_HOSTS: 2, ROBOTS_HOSTS_UNREACHABLE: 1},
         ["no_pages_fetched"]),
        # a recrawl whose pages all answered 304 or were skipped by min_age: kept current
        ({"scheduler/enqueued": 4, "incremental/not_modified": 4}, []),
        ({"scheduler/enqueued": 4, "incremental/skipped_recent": 4}, []),
        # items without a page (a spider reading a file): not a dead site
        ({"scheduler/enqueued": 1, "item_scraped_count": 3}, []),
        ({"scheduler/enqueued": 1, RESPONSES: 1}, []),
        # an error rule already says why: one line, not two
        ({"scheduler/enqueued": 1, "crawl/fetch_errors": 1, ROBOTS_HOSTS: 1,
          ROBOTS_HOSTS_UNREACHABLE: 1}, ["errors"]),
    ],
)  # fmt: skip
def test_judge_a_run_that_fetched_nothing(stats: dict[str, int], kinds: list[str]) -> None:
    policy = HealthPolicy()  # items = item_scraped_count: 304s and skips count on their own
    verdict = judge("finished", stats, policy)
    assert [failure.split(":")[0] for failure in verdict.failures] == kinds
    assert verdict.exit_status == (1 if kinds else 0)


def plain_spider(url: str) -> str:
    """A user's spider as the Scrapy tutorial writes it: no base class of ours, dict items."""
    return (
        "import scrapy\n\n\n"
        "class DeadSiteSpider(scrapy.Spider):\n"
        '    name = "deadsite"\n'
        f"    start_urls = [{url!r}]\n\n"
        "    def parse(self, response):\n"
        '        yield {"url": response.url, "title": response.css("title::text").get()}\n'
    )


@pytest.mark.parametrize("command", ["crawl", "runspider"])
def test_dead_site_with_a_plain_spider_fails(
    refused_url: str, tmp_path: Path, command: str
) -> None:
    """U7: connection refused, robots.txt unreachable, 0 pages: a failed run, not `finished`."""
    (tmp_path / "deadsite_spiders.py").write_text(plain_spider(refused_url))
    db = tmp_path / "crawler.sqlite"
    target = ["crawl", "deadsite", "-s", "SPIDER_MODULES=deadsite_spiders"]
    if command == "runspider":
        target = ["runspider", "deadsite_spiders.py"]
    env = scrapy_env()
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}{os.pathsep}{tmp_path}"
    done = run_contained(
        [sys.executable, "-m", "scrapy", *target, "-s", f"SQLITE_PATH={db}",
         "-s", f"CSV_EXPORT_DIR={tmp_path / 'out'}", "-s", "CRAWL_PROFILE=fast",
         # a plain spider names no target: loopback stands in for the user's public site
         "-s", "SAFETY_ALLOW_PRIVATE_TARGETS=True"],
        cwd=tmp_path, env=env, timeout=100,
    )  # fmt: skip
    result = CrawlResult(done.returncode, done.stdout, done.stderr, db, tmp_path / "out")
    assert result.returncode == 1, result.stderr[-3000:]
    run = last_run(result)
    assert (run["spider"], run["finish_reason"], run["pages"]) == ("deadsite", "finished", 0)
    assert run["exit_status"] == 1
    host = refused_url.split("/")[2]
    assert run["failure"].startswith(
        f"robots_unreachable: the robots.txt of every host (1) was unreachable ({host}: "
    ), run["failure"]
    assert "ConnectionRefusedError" in run["failure"]
    assert [line.split("run failed: ")[1] for line in error_lines(result)] == [run["failure"]]


def test_csv_that_cannot_be_published_fails(
    demo_site: DemoSite, run_crawl: Any, tmp_path: Path
) -> None:
    """The rename at close fails: csv_error, exit 1, and the log says where the rows are.

    The issue made the export dir read-only mid-crawl; tests run as root, where permissions stop
    nothing, so a directory takes the file's final name instead: ``os.replace`` fails the same
    way (the part file was written, only its publication fails), for root too.
    """
    (tmp_path / "out" / "pages.csv").mkdir(parents=True)
    result = run_crawl(
        "pages", "-a", f"url={demo_site.url}about", "-a", f"url={demo_site.url}legacy",
        "-s", "CSV_FILENAME=pages.csv",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    run = last_run(result)
    assert (run["finish_reason"], run["exit_status"], run["items"]) == ("finished", 1, 2)
    assert run["failure"] == "csv_error: 1 CSV file not published (pages), see the CSV: line"
    assert [line.split("run failed: ")[1] for line in error_lines(result)] == [run["failure"]]
    (part,) = (tmp_path / "out").glob(".pages-pages.part-*")
    (line,) = [line for line in result.stderr.splitlines() if "CSV: cannot publish" in line]
    assert f"CSV: cannot publish pages (kept {part}): " in line
    assert "Is a directory" in line
    assert f"2 rows are also in the store {result.db} (scrapy export pages --run {run['id']})" in (
        line
    )
    assert len(part.read_text().splitlines()) == 3  # header and both rows
    assert len(result.rows("SELECT * FROM pages")) == 2
