"""ErrorSnapshots: failed_pages rows and snapshot files of a real crawl against the fault server."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.image
import pytest
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from crawler import stats as keys
from crawler.demo.server import DemoSite
from crawler.extensions.snapshots import ErrorSnapshots, SnapshotConfig, SnapshotFolder
from tests.faultserver import FaultServer
from tests.support import CrawlResult, run_crawl_in

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(120)

CANARY = "canary-token-5f3a9c"  # sent as Authorization: must be in no snapshot file
COOKIE = "session=cookie-secret-77d1"  # sent back as Set-Cookie: masked too
# the pages of items whose title says "Reject" are rejected (a reject with a page to keep)
REJECT_SCHEMA = {
    "properties": {
        "title": {"anyOf": [{"type": "null"}, {"type": "string", "not": {"pattern": "Reject"}}]}
    }
}


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def crawl(workdir: Path, urls: list[str], *settings: str) -> CrawlResult:
    workdir.mkdir(parents=True, exist_ok=True)
    seeds = workdir / "urls.txt"
    seeds.write_text("\n".join(urls) + "\n", encoding="utf-8")
    options = [arg for setting in settings for arg in ("-s", setting)]
    snapshots = f"SNAPSHOT_DIR={workdir / 'snapshots'}"
    return run_crawl_in(workdir, "pages", "-a", f"urls={seeds}", "-s", snapshots, *options)


def failed_rows(result: CrawlResult) -> dict[str, Any]:
    rows = result.rows("SELECT * FROM failed_pages ORDER BY id")
    return {row["url"]: dict(row) for row in rows}


def run_stats(result: CrawlResult) -> dict[str, Any]:
    (row,) = result.rows("SELECT stats FROM runs")
    return dict(json.loads(row["stats"]))


@pytest.fixture(scope="module")
def mixed(
    faults: FaultServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[CrawlResult, dict[str, str], Path]:
    """One crawl: a 404 with a cookie, a 500 (retried), a large 410, a refused connection, a
    page whose item is rejected and a good page."""
    workdir = tmp_path_factory.mktemp("mixed")
    with socket.socket() as sock:  # bound, then closed: connection refused
        sock.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{sock.getsockname()[1]}/refused"
    urls = {
        "404": faults.url(f"/status?code=404&cookie={COOKIE.replace('=', '%3D')}"),
        "500": faults.url("/status?code=500&key=mixed"),
        "410": faults.url("/status?code=410&size=5000"),
        "refused": refused,
        "reject": faults.url("/page?title=Reject+me"),
        "good": faults.url("/page?title=Fine"),
    }
    result = crawl(
        workdir,
        list(urls.values()),
        f'DEFAULT_REQUEST_HEADERS={{"Authorization": "Bearer {CANARY}"}}',
        f"VALIDATE_JSON_SCHEMAS={json.dumps({'pages': REJECT_SCHEMA})}",
        "SNAPSHOT_BODY_BYTES=1000",
        "ROBOTSTXT_OBEY=False",  # the refused page's own request fails, not its robots.txt
    )
    return result, urls, workdir / "snapshots"


def test_every_final_failure_is_one_row(mixed: tuple[CrawlResult, dict[str, str], Path]) -> None:
    result, urls, _ = mixed
    rows = failed_rows(result)
    assert set(rows) == {urls["404"], urls["500"], urls["410"], urls["refused"]}
    assert {url: (row["status"], row["error"]) for url, row in rows.items()} == {
        urls["404"]: (404, "http_404"),
        urls["500"]: (500, "http_500"),
        urls["410"]: (410, "http_410"),
        urls["refused"]: (None, "DownloadConnectionRefusedError"),
    }
    assert rows[urls["404"]]["host"] == "127.0.0.1"
    (run,) = result.rows("SELECT id FROM runs")
    assert {row["run_id"] for row in rows.values()} == {run["id"]}
    assert run_stats(result)[keys.FAILED_PAGES] == 4


def test_retried_attempts_are_not_failures(
    mixed: tuple[CrawlResult, dict[str, str], Path], faults: FaultServer
) -> None:
    result, urls, _ = mixed
    assert len(faults.hits(prefix="/status?code=500&key=mixed")) > 1  # it was retried
    stats = run_stats(result)
    assert stats["retry/count"] >= 2
    assert len(result.rows("SELECT * FROM failed_pages WHERE url = ?", urls["500"])) == 1


def test_snapshots_mask_secrets(mixed: tuple[CrawlResult, dict[str, str], Path]) -> None:
    result, urls, folder = mixed
    rows = failed_rows(result)
    snapshot = json.loads((folder / rows[urls["404"]]["snapshot"]).read_text())
    assert snapshot["url"] == urls["404"]
    assert snapshot["status"] == 404
    assert snapshot["error"] == "http_404"
    assert snapshot["request_headers"]["Authorization"] == "***"
    assert snapshot["response_headers"]["Set-Cookie"] == "***"
    assert snapshot["response_headers"]["Content-Type"] == "text/html; charset=utf-8"
    body = (folder / rows[urls["404"]]["snapshot"]).parent / snapshot["body"]
    assert b"<h1>Status 404</h1>" in body.read_bytes()
    files = list(folder.rglob("*"))
    assert files
    for file in files:
        if file.is_file():
            text = file.read_bytes()
            assert CANARY.encode() not in text, file
    assert not [f for f in files if f.name.startswith(".")]  # no part file left behind


def test_error_without_response_is_kept(mixed: tuple[CrawlResult, dict[str, str], Path]) -> None:
    result, urls, folder = mixed
    row = failed_rows(result)[urls["refused"]]
    snapshot = json.loads((folder / row["snapshot"]).read_text())
    assert snapshot["status"] is None
    assert snapshot["body"] is None
    assert snapshot["message"].startswith("DownloadConnectionRefusedError: ")
    assert snapshot["request_headers"]["Authorization"] == "***"


def test_body_is_truncated(mixed: tuple[CrawlResult, dict[str, str], Path]) -> None:
    result, urls, folder = mixed
    path = folder / failed_rows(result)[urls["410"]]["snapshot"]
    snapshot = json.loads(path.read_text())
    assert snapshot["truncated"] is True
    assert snapshot["body_bytes"] > 5000
    assert (path.parent / snapshot["body"]).stat().st_size == 1000
    small = json.loads((folder / failed_rows(result)[urls["404"]]["snapshot"]).read_text())
    assert small["truncated"] is False


def test_rejected_items_page_is_linked(mixed: tuple[CrawlResult, dict[str, str], Path]) -> None:
    result, urls, folder = mixed
    (reject,) = result.rows("SELECT url, reason, snapshot FROM rejects")
    assert reject["url"] == urls["reject"]
    assert reject["snapshot"]
    snapshot = json.loads((folder / reject["snapshot"]).read_text())
    assert snapshot["status"] == 200
    assert "title" in snapshot["reject_reason"]
    assert b"Reject me" in ((folder / reject["snapshot"]).parent / snapshot["body"]).read_bytes()
    stats = run_stats(result)
    assert stats[keys.SNAPSHOTS_SAVED] == 5  # 4 failed pages + 1 rejected item's page
    assert keys.SNAPSHOTS_SKIPPED not in stats
    (run,) = result.rows("SELECT id FROM runs")
    assert {p.parent.name for p in folder.rglob("*.json")} == {f"run-{run['id']}"}


def test_count_cap(faults: FaultServer, tmp_path: Path) -> None:
    urls = [faults.url(f"/status?code=404&n={n}") for n in range(4)]
    result = crawl(tmp_path, urls, "SNAPSHOT_MAX_COUNT=2")
    rows = failed_rows(result)
    assert set(rows) == set(urls)  # every row, with or without a snapshot
    kept = [row["snapshot"] for row in rows.values() if row["snapshot"]]
    assert len(kept) == 2
    assert len(list((tmp_path / "snapshots").rglob("*.json"))) == 2
    stats = run_stats(result)
    assert stats[keys.SNAPSHOTS_SAVED] == 2
    assert stats[keys.SNAPSHOTS_SKIPPED] == 2


def test_byte_cap(faults: FaultServer, tmp_path: Path) -> None:
    urls = [faults.url(f"/status?code=404&size=3000&n={n}") for n in range(3)]
    result = crawl(tmp_path, urls, "SNAPSHOT_MAX_BYTES=6000")
    files = [f for f in (tmp_path / "snapshots").rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 6000
    stats = run_stats(result)
    assert stats[keys.SNAPSHOTS_SAVED] == 1
    assert stats[keys.SNAPSHOTS_SKIPPED] == 2
    assert len(failed_rows(result)) == 3


def test_switched_off_keeps_rows_not_files(
    faults: FaultServer, tmp_path: Path, refused_url: str
) -> None:
    urls = [faults.url("/status?code=404&off=1"), faults.url("/status?code=503&off=1")]
    forbidden = faults.url("/private/page")  # robots.txt Disallow: not fetched on purpose
    loop = faults.url("/loop")  # redirects to itself: Scrapy gives up at REDIRECT_MAX_TIMES
    result = crawl(tmp_path, [*urls, refused_url, forbidden, loop], "SNAPSHOTS_ENABLED=False")
    rows = failed_rows(result)
    assert set(rows) == {*urls, refused_url, loop}
    assert rows[loop]["error"] == "redirect_limit"
    assert all(row["snapshot"] is None for row in rows.values())
    # its host's robots.txt is unreachable: the page failed, it was not refused on purpose
    assert rows[refused_url]["error"] == "RobotsTxtUnreachable"
    assert not (tmp_path / "snapshots").exists()


def test_no_store_keeps_files_by_time(faults: FaultServer, tmp_path: Path) -> None:
    result = crawl(
        tmp_path,
        [faults.url("/status?code=404&nostore=1")],
        "SQLITE_ENABLED=False",
        "FRONTIER=memory",
    )
    assert not result.db.exists()
    (folder,) = (tmp_path / "snapshots").iterdir()
    assert folder.name.startswith("run-2")  # run-<UTC time>-<pid>
    (snapshot,) = folder.glob("*.json")
    assert json.loads(snapshot.read_text())["run_id"] is None


def test_not_loaded_without_a_run_record() -> None:
    """shell, fetch, parse and check record no run: no rows, no files."""
    crawler = get_crawler(Spider, {"RUN_RECORD": False})
    with pytest.raises(NotConfigured):
        ErrorSnapshots.from_crawler(crawler)


def test_negative_cap_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"^SNAPSHOT_MAX_COUNT must be 0 or more, not -1$"):
        SnapshotConfig.from_settings(Settings({"SNAPSHOT_MAX_COUNT": -1}))


# --- screenshots of rendered pages (real Chromium) -----------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")


def rendered_crawl(workdir: Path, site: DemoSite, *settings: str) -> tuple[CrawlResult, Path]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")
    urls = [f"{site.url}js/products/0", f"{site.url}js/products/1"]  # a 404 and a good page
    result = crawl(workdir, urls, "RENDER_MODE=always", *settings)
    return result, workdir / "snapshots"


@pytest.mark.xdist_group("browser")
@pytest.mark.timeout(150)
def test_failed_rendered_page_has_a_screenshot(demo_site: DemoSite, tmp_path: Path) -> None:
    result, folder = rendered_crawl(tmp_path, demo_site)
    rows = failed_rows(result)
    assert list(rows) == [f"{demo_site.url}js/products/0"], result.stderr[-3000:]
    (row,) = rows.values()
    snapshot = json.loads((folder / row["snapshot"]).read_text())
    assert snapshot["rendered"] is True and snapshot["status"] == 404
    assert snapshot["screenshot"] == row["snapshot"].rsplit("/", 1)[1].replace(".json", ".png")
    png = (folder / row["snapshot"]).parent / snapshot["screenshot"]
    assert [p.name for p in folder.rglob("*.png")] == [png.name]  # the good page: none
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = matplotlib.image.imread(png)  # decodes: height x width x RGB(A)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    colours = {tuple(p) for p in pixels.reshape(-1, pixels.shape[2])[::7].tolist()}
    assert len(colours) >= 5  # text on a background, not a blank page
    stats = run_stats(result)
    assert stats[keys.SNAPSHOTS_SAVED] == 1
    assert stats[keys.SCREENSHOTS_TAKEN] == 1
    assert not [f for f in folder.rglob(".*")]  # no part file left behind


@pytest.mark.xdist_group("browser")
@pytest.mark.timeout(150)
def test_screenshots_switched_off(demo_site: DemoSite, tmp_path: Path) -> None:
    result, folder = rendered_crawl(tmp_path, demo_site, "SNAPSHOT_SCREENSHOTS=False")
    (row,) = failed_rows(result).values()
    snapshot = json.loads((folder / row["snapshot"]).read_text())
    assert snapshot["rendered"] is True
    assert snapshot["screenshot"] is None
    assert not list(folder.rglob("*.png"))
    assert keys.SCREENSHOTS_TAKEN not in run_stats(result)  # the browser took none


def test_screenshot_past_the_byte_cap_is_left_out(tmp_path: Path) -> None:
    """The JSON and body are kept; the screenshot that would pass SNAPSHOT_MAX_BYTES is not."""
    config = SnapshotConfig(directory=tmp_path, max_bytes=2000)
    folder = SnapshotFolder(config, "run-1")
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    first = folder.keep("404", {"url": "a", "screenshot": None}, b"<p>a</p>", True, png)
    second = folder.keep("404", {"url": "b", "screenshot": None}, b"<p>b</p>", True, bytes(3000))
    assert first == "run-1/0001-404.json" and second == "run-1/0002-404.json"
    assert json.loads((tmp_path / first).read_text())["screenshot"] == "0001-404.png"
    assert (tmp_path / "run-1/0001-404.png").read_bytes() == png
    assert json.loads((tmp_path / second).read_text())["screenshot"] is None
    assert not (tmp_path / "run-1/0002-404.png").exists()
    assert folder.used == sum(f.stat().st_size for f in (tmp_path / "run-1").iterdir())
