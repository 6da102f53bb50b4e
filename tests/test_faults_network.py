"""Network and protocol faults N1–N16 (docs/faults.md): real `scrapy crawl` runs against
``tests/faultserver.py`` on 127.0.0.1. Each fault must end recorded in the store with its error
class, retried where that makes sense, bounded in time and memory, and the crawl must finish.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.faultserver import FaultServer
from tests.support import CrawlResult, run_crawl_in, scrapy_env

MiB = 1024 * 1024
# Seconds: a request leaves the crawler on time but reaches the server a little later or earlier
# than the one before it (a new connection each time, a busy machine).
SLACK = 0.25


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def crawl(
    workdir: Path,
    urls: list[str],
    *settings: str,
    spider: str = "pages",
    profile: str = "fast",
    args: tuple[str, ...] = (),
    timeout: float = 70,
    rss: bool = False,
) -> tuple[CrawlResult, int]:
    """`scrapy crawl`; the result and the crawl's peak RSS in bytes.

    In this process (peak 0) unless ``rss``: then in a subprocess whose memory is watched, killed
    after ``timeout`` seconds (keep it below the test's own timeout, which would end pytest
    without killing the crawl).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    db, out = workdir / "crawler.sqlite", workdir / "out"
    if spider == "pages":
        seeds = workdir / "urls.txt"
        seeds.write_text("\n".join(urls), encoding="utf-8")
        arguments = ["-a", f"urls={seeds}"]
    else:
        arguments = [arg for url in urls for arg in ("-a", f"start_url={url}")]
    arguments += [part for value in args for part in ("-a", value)]
    if not rss:
        options = [part for value in settings for part in ("-s", value)]
        return run_crawl_in(workdir, spider, *arguments, *options, profile=profile), 0
    command = [
        sys.executable, "-m", "scrapy", "crawl", spider, *arguments,
        "-s", f"SQLITE_PATH={db}", "-s", f"CSV_EXPORT_DIR={out}", "-s", f"CRAWL_PROFILE={profile}",
        *[part for value in settings for part in ("-s", value)],
    ]  # fmt: skip
    logs = workdir / "stdout.txt", workdir / "stderr.txt"  # files: a full pipe would block
    with logs[0].open("w") as stdout, logs[1].open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=workdir, env=scrapy_env(), stdout=stdout, stderr=stderr
        )
        peak, deadline = 0, time.monotonic() + timeout
        watched = psutil.Process(process.pid)
        try:
            while process.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(psutil.Error):
                    peak = max(peak, watched.memory_info().rss)
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    out_text, err_text = (path.read_text(errors="replace") for path in logs)
    assert process.returncode != -signal.SIGKILL, (
        f"crawl killed after {timeout} s: {err_text[-2000:]}"
    )
    return CrawlResult(process.returncode, out_text, err_text, db, out), peak


def pages(result: CrawlResult) -> dict[str, Any]:
    return {row["url"]: row for row in result.rows("SELECT * FROM pages")}


def run_of(result: CrawlResult) -> tuple[Any, dict[str, Any]]:
    (run,) = result.rows("SELECT * FROM runs")
    return run, json.loads(run["stats"])


def assert_finished(result: CrawlResult, status: int = 0) -> dict[str, Any]:
    assert result.returncode == status, result.stderr[-3000:]
    run, stats = run_of(result)
    assert run["finish_reason"] == "finished"
    return stats


@pytest.mark.timeout(90)
def test_n1_no_response_headers_ever(faults: FaultServer, tmp_path: Path) -> None:
    never, other = faults.url("/never?case=n1"), faults.url("/page?case=n1")
    result, _ = crawl(tmp_path, [never, other], "DOWNLOAD_TIMEOUT=1", "RETRY_TIMES=2")
    stats = assert_finished(result)
    rows = pages(result)
    assert rows[never]["status"] is None
    assert rows[never]["error"].startswith("DownloadTimeoutError: ")
    assert rows[other]["status"] == 200  # other URLs unaffected
    assert len(faults.hits(prefix="/never?case=n1")) == 3  # retried twice
    assert stats["retry/reason_count/scrapy.exceptions.DownloadTimeoutError"] == 2
    assert run_of(result)[0]["errors"] == 1


@pytest.mark.timeout(90)
def test_n2_body_stalls_after_headers(faults: FaultServer, tmp_path: Path) -> None:
    stall, other = faults.url("/stall?case=n2"), faults.url("/page?case=n2")
    result, _ = crawl(tmp_path, [stall, other], "DOWNLOAD_TIMEOUT=1", "RETRY_TIMES=1")
    assert_finished(result)
    rows = pages(result)
    # no partial item: no status, size or title from the few bytes that came
    assert rows[stall]["error"].startswith("DownloadTimeoutError: ")
    assert (rows[stall]["status"], rows[stall]["content_length"], rows[stall]["title"]) == (
        None,
        None,
        None,
    )
    assert len(faults.hits(prefix="/stall?case=n2")) == 2
    assert rows[other]["status"] == 200


@pytest.mark.timeout(90)
def test_n3_connection_refused(faults: FaultServer, refused_url: str, tmp_path: Path) -> None:
    other = faults.url("/page?case=n3")
    result, _ = crawl(tmp_path, [refused_url, other], "RETRY_TIMES=1")
    stats = assert_finished(result)
    rows = pages(result)
    # its robots.txt was refused first, so the host is disallowed (RFC 9309), naming the cause
    error = rows[refused_url]["error"]
    assert error.startswith("RobotsTxtUnreachable: robots.txt of 127.0.0.1:"), error
    assert "(DownloadConnectionRefusedError: " in error
    assert rows[other]["status"] == 200
    assert stats["robots/unreachable"] == 1
    assert stats["retry/reason_count/scrapy.exceptions.DownloadConnectionRefusedError"] == 1


@pytest.mark.timeout(90)
def test_n4_body_shorter_than_content_length_and_broken_chunked(
    faults: FaultServer, tmp_path: Path
) -> None:
    short, chunked = faults.url("/short?case=n4"), faults.url("/chunked?case=n4")
    other = faults.url("/page?case=n4")
    result, _ = crawl(tmp_path, [short, chunked, other], "RETRY_TIMES=2")
    stats = assert_finished(result)
    rows = pages(result)
    for url in (short, chunked):  # the aiohttp handler (fast profile) also says what was short
        assert rows[url]["status"] is None
        assert rows[url]["error"].split(":")[0] == "ResponseDataLossError", rows[url]
    assert len(faults.hits(prefix="/short?case=n4")) == 3
    assert len(faults.hits(prefix="/chunked?case=n4")) == 3
    assert stats["retry/reason_count/scrapy.exceptions.ResponseDataLossError"] == 4
    assert rows[other]["status"] == 200


@pytest.mark.timeout(90)
def test_n5_connection_reset_mid_body(faults: FaultServer, tmp_path: Path) -> None:
    reset, other = faults.url("/reset?case=n5"), faults.url("/page?case=n5")
    result, _ = crawl(tmp_path, [reset, other], "RETRY_TIMES=1")
    assert_finished(result)
    rows = pages(result)
    assert rows[reset]["status"] is None
    assert rows[reset]["error"].split(":")[0] == "ResponseDataLossError", rows[reset]
    assert len(faults.hits(prefix="/reset?case=n5")) == 2
    assert rows[other]["status"] == 200


@pytest.mark.timeout(90)
def test_n6_unknown_host_fails_at_once_without_dns(faults: FaultServer, tmp_path: Path) -> None:
    # .invalid (RFC 6761) never resolves: ReservedNamesMiddleware refuses it before the
    # downloader, so no resolver (and no DNS query) is ever involved.
    unknown, other = "http://no-such-host.invalid/page", faults.url("/page?case=n6")
    result, _ = crawl(tmp_path, [unknown, other], "DOWNLOAD_TIMEOUT=30", "RETRY_TIMES=2")
    stats = assert_finished(result)
    rows = pages(result)
    assert rows[unknown]["error"].startswith(
        "CannotResolveHostError: no-such-host.invalid: names under .invalid never resolve"
    )
    assert rows[other]["status"] == 200
    assert stats["reservednames/refused"] == 1
    assert "retry/count" not in stats  # recorded at once: not retried, no timeout waited for
    # only robots.txt and the other page reached the downloader: the unknown host never did
    assert stats["downloader/request_count"] == 2


@pytest.mark.timeout(90)
def test_n7_503_twice_then_200(faults: FaultServer, tmp_path: Path) -> None:
    urls = [faults.url(f"/flaky?fail=2&case=n7&n={n}") for n in range(3)]
    result, _ = crawl(tmp_path, urls, "RETRY_TIMES=2")
    stats = assert_finished(result)
    rows = result.rows("SELECT url, status, error FROM pages")
    assert sorted((r["url"], r["status"], r["error"]) for r in rows) == sorted(
        (url, 200, None) for url in urls
    )  # exactly one item per URL
    assert stats["item_scraped_count"] == 3
    assert all(len(faults.hits(prefix=f"/flaky?fail=2&case=n7&n={n}")) == 3 for n in range(3))
    assert "retryafter/throttled" not in stats  # a 503 without Retry-After is a plain error


@pytest.mark.timeout(90)
def test_n8_429_with_retry_after(faults: FaultServer, tmp_path: Path) -> None:
    throttled = faults.url("/throttle?times=1&after=3&case=n8")
    after = [faults.url(f"/page?case=n8&n={n}") for n in range(2)]
    # a second host name for the same server: its own downloader slot and backoff
    growing = faults.url("/throttle?times=3&after=1&case=n8b", host="localhost")
    result, _ = crawl(
        tmp_path,
        [throttled, *after, growing],
        "RETRY_TIMES=3",
        "CONCURRENT_REQUESTS_PER_DOMAIN=1",
        "DOWNLOAD_DELAY=0.2",  # requests of one host one after the other, in seed order
    )
    stats = assert_finished(result)
    assert {row["status"] for row in pages(result).values()} == {200}
    first_429 = faults.hits(prefix="/throttle?times=1&after=3&case=n8")[0].time
    later = [
        h.time for h in faults.hits(origin="main") if h.time > first_429 and "n8b" not in h.target
    ]
    assert later and min(later) - first_429 >= 3.0 - SLACK  # no request to that host for 3 s
    # the other host's backoff grows: 1 s, 2 s, 4 s between its attempts (Retry-After: 1)
    times = [h.time for h in faults.hits(prefix="/throttle?times=3&after=1&case=n8b")]
    gaps = [b - a for a, b in pairwise(times)]
    assert len(gaps) == 3, gaps
    assert gaps[0] >= 1 - SLACK and gaps[1] >= 2 - SLACK and gaps[2] >= 4 - SLACK, gaps
    assert times[1] < first_429 + 3  # … while the first host was still paused: hosts independent
    assert stats["retryafter/throttled/429"] == 4
    assert stats["retryafter/max_backoff"] == 4.0
    assert stats["retryafter/recovered"] == 1  # the first host; the other is still at 2 s


@pytest.mark.timeout(90)
def test_n9_redirect_loop_long_chain_and_meta_refresh_loop(
    faults: FaultServer, tmp_path: Path
) -> None:
    loop, chain = faults.url("/loop?case=n9"), faults.url("/chain?n=50&case=n9")
    meta, other = faults.url("/meta-loop?case=n9"), faults.url("/page?case=n9")
    result, _ = crawl(tmp_path, [loop, chain, meta, other])
    assert_finished(result)
    rows = pages(result)
    for url in (loop, chain, meta):
        assert rows[url]["error"] == "IgnoreRequest: max redirections reached", url
    assert len(faults.hits(path="/loop")) == 21  # REDIRECT_MAX_TIMES (20) hops, then stop
    assert len(faults.hits(path="/chain")) == 21
    assert len(faults.hits(path="/meta-loop")) == 21
    assert rows[other]["status"] == 200


@pytest.mark.timeout(160)
def test_n10_infinite_url_space(faults: FaultServer, tmp_path: Path) -> None:
    starts = [
        faults.url("/calendar?d=0"),  # links to the day before and after, forever
        faults.url("/counter?n=0"),  # ?n=k+1
        faults.url("/a/"),  # /a/a/a/…
        faults.url("/long?n=0"),  # links of 10 KB
    ]
    result, peak = crawl(tmp_path, starts, spider="site", rss=True)  # depth 3 by default
    stats = assert_finished(result)
    urls = [row["url"] for row in result.rows("SELECT url FROM pages")]
    assert sum("/calendar" in u for u in urls) == 7  # d = -3 … 3
    assert sum("/counter" in u for u in urls) == 4
    assert sum("/a/" in u for u in urls) == 4
    assert [u for u in urls if "/long" in u] == [starts[3]]  # its 10 KB link was dropped
    assert stats["urllength/request_ignored_count"] == 1
    assert peak < 400 * MiB, peak // MiB

    # without a depth limit, the page budget stops it
    result, peak = crawl(
        tmp_path / "deep", starts[:1], spider="site", args=("depth=100000", "max_pages=60"),
        rss=True,
    )  # fmt: skip
    stats = assert_finished(result)
    assert 55 <= stats["item_scraped_count"] <= 60
    assert stats["site/max_pages_skipped"] >= 1
    assert peak < 400 * MiB, peak // MiB


@pytest.mark.timeout(90)
def test_n11_oversized_bodies(faults: FaultServer, tmp_path: Path) -> None:
    advertised, endless = faults.url("/advertised?case=n11"), faults.url("/endless?case=n11")
    other = faults.url("/page?case=n11")
    result, peak = crawl(tmp_path, [advertised, endless, other], "RETRY_TIMES=0", rss=True)
    assert_finished(result)
    rows = pages(result)
    for url in (advertised, endless):
        assert rows[url]["status"] is None
        assert rows[url]["error"].startswith("DownloadCancelledError"), rows[url]["error"]
    assert rows[other]["status"] == 200
    assert peak < 250 * MiB, peak // MiB  # cancelled at DOWNLOAD_MAXSIZE (32 MiB)


@pytest.mark.timeout(90)
def test_n12_decompression_bombs(faults: FaultServer, tmp_path: Path) -> None:
    encodings = ("gzip", "deflate", "br", "zstd", "nested")
    bombs = [faults.url(f"/bomb?enc={enc}&case=n12") for enc in encodings]
    other = faults.url("/page?case=n12")
    result, peak = crawl(tmp_path, [*bombs, other], "RETRY_TIMES=0", rss=True)
    stats = assert_finished(result)
    rows = pages(result)
    for url in bombs:
        assert rows[url]["error"].startswith("IgnoreRequest: Ignored response"), url
        assert "exceeded DOWNLOAD_MAXSIZE (33554432 B) during decompression" in rows[url]["error"]
    assert rows[other]["status"] == 200
    assert (
        "httpcompression/response_bytes" not in stats
        or stats["httpcompression/response_bytes"] < 1 * MiB
    )
    assert peak < 400 * MiB, peak // MiB


@pytest.mark.timeout(90)
def test_n13_truncated_gzip_with_a_consistent_length(faults: FaultServer, tmp_path: Path) -> None:
    truncated, whole = faults.url("/gzip?cut=1&case=n13"), faults.url("/gzip?case=n13")
    result, _ = crawl(tmp_path, [truncated, whole], "RETRY_TIMES=2")
    stats = assert_finished(result)
    rows = pages(result)
    # stock Scrapy would store half a page with status 200; here it is a data-loss error
    assert rows[truncated]["status"] is None and rows[truncated]["title"] is None
    assert rows[truncated]["error"].startswith("ResponseDataLossError: gzip stream cut short")
    assert len(faults.hits(prefix="/gzip?cut=1&case=n13")) == 3  # retried like any data loss
    assert stats["compression/truncated"] == 3
    assert (rows[whole]["status"], rows[whole]["title"]) == (200, "Gzipped")
    assert rows[whole]["word_count"] > 20_000


@pytest.mark.timeout(90)
def test_n14_bad_charsets_invalid_utf8_nul_and_surrogates(
    faults: FaultServer, tmp_path: Path
) -> None:
    kinds = ("latin1-as-utf8", "utf8-as-latin1", "nul", "surrogate", "unknown", "control")
    urls = {kind: faults.url(f"/text?kind={kind}") for kind in kinds}
    result, _ = crawl(tmp_path, list(urls.values()))
    assert_finished(result)
    rows = pages(result)
    assert len(rows) == len(kinds) and {r["status"] for r in rows.values()} == {200}
    titles = {kind: rows[url]["title"] for kind, url in urls.items()}
    assert titles["latin1-as-utf8"] == "Caf\ufffd cr\ufffdme"  # undecodable bytes marked
    assert titles["utf8-as-latin1"] == "CafÃ© crÃ¨me"  # the HTTP charset wins over <meta>
    assert titles["nul"] == "Nulbyte title"
    assert titles["surrogate"].startswith("Lone ") and titles["surrogate"].endswith("surrogate")
    assert titles["unknown"] == "Unknown charset"
    assert titles["control"] == "Tab and vertical escape"
    for title in titles.values():
        assert title.isprintable() and not any(0xD800 <= ord(c) <= 0xDFFF for c in title)
    csv_rows = result.csv_rows()  # every item reaches every sink
    assert sorted(r["url"] for r in csv_rows) == sorted(urls.values())


@pytest.mark.timeout(200)
def test_n15_hostile_html_and_xml(faults: FaultServer, tmp_path: Path) -> None:
    # a million links on one page: counted straight from lxml, no Selector or urljoin per link
    kinds = ("deep", "text", "links&n=1000000")
    hostile = [faults.url(f"/hostile?kind={kind}") for kind in kinds]
    started = time.monotonic()
    result, peak = crawl(tmp_path, hostile, timeout=100, rss=True)
    assert_finished(result)
    assert time.monotonic() - started < 100
    rows = {kind: pages(result)[url] for kind, url in zip(kinds, hostile, strict=True)}
    assert {r["status"] for r in rows.values()} == {200}
    assert rows["links&n=1000000"]["internal_links"] == 1_000_000
    assert rows["text"]["word_count"] >= 2_000_000
    assert rows["deep"]["title"] is None  # no <head> to take one from, and no crash
    assert peak < 1024 * MiB, peak // MiB
    # sitemaps listed by robots.txt: billion laughs and an external entity naming a local file
    canary = f"CANARY-{time.time_ns()}"
    secret = tmp_path / "secret.txt"
    secret.write_text(canary, encoding="utf-8")
    faults.secret_file = str(secret)
    started = time.monotonic()
    result, peak = crawl(
        tmp_path / "xml",
        [faults.url("/page?case=n15")],
        spider="site",
        args=("sitemap=true", "depth=0"),
        rss=True,
    )
    assert_finished(result)
    assert time.monotonic() - started < 60
    assert len(faults.hits(prefix="/xml/")) == 2
    targets = [h.target for h in faults.hits()]
    assert faults.url("/page?from=sitemap").endswith(
        next(t for t in targets if "from=sitemap" in t)
    )  # the sitemaps were read
    assert not any("lollol" in t or canary in t for t in targets)  # no entity was expanded
    files = [result.db, *result.csv_files()]
    assert not any(canary.encode() in path.read_bytes() for path in files)
    assert canary not in result.stderr
    assert peak < 400 * MiB, peak // MiB


@pytest.mark.timeout(90)
def test_n16_robots_txt_variants(faults: FaultServer, tmp_path: Path) -> None:
    urls = [
        faults.url("/page?case=n16", "disallow"),  # 200 Disallow: /
        faults.url("/page?case=n16", "missing"),  # 404: everything allowed
        faults.url("/page?case=n16", "error"),  # 503: the host is disallowed
        faults.url("/page?case=n16", "timeout"),  # no answer: disallowed as well
        faults.url("/private/x?case=n16", "huge"),  # 6 MiB: the first 5 MiB are read
        faults.url("/late?case=n16", "huge"),  # disallowed only after 5 MiB: allowed
        faults.url("/private/x?case=n16", "redirect"),  # rules of the redirect target apply
        faults.url("/page?case=n16", "redirect"),
        faults.url("/page?case=n16&n=1", "recover"),  # 503 first: disallowed…
        faults.url("/page?case=n16&sleep=1.5"),
        faults.url("/page?case=n16&n=2", "recover"),  # …asked again later, it answers: allowed
    ]
    result, _ = crawl(
        tmp_path,
        urls,
        "CONCURRENT_REQUESTS=1",  # one after the other: the recover host is asked twice
        "DOWNLOAD_TIMEOUT=1",
        "RETRY_TIMES=0",
        "ROBOTSTXT_UNREACHABLE_RETRY=1",
        "HEALTH_ENABLED=False",  # most of these URLs are refused on purpose: not a failed run
    )
    stats = assert_finished(result)
    rows = pages(result)
    page_hits = {
        origin: [h.target for h in faults.hits(origin=origin) if "robots" not in h.path]
        for origin in ("disallow", "missing", "error", "timeout", "huge", "redirect", "recover")
    }
    assert page_hits == {
        "disallow": [],
        "missing": ["/page?case=n16"],
        "error": [],
        "timeout": [],
        "huge": ["/late?case=n16"],
        "redirect": ["/page?case=n16"],
        "recover": ["/page?case=n16&n=2"],
    }
    assert rows[urls[0]]["error"] == "IgnoreRequest: Forbidden by robots.txt"
    assert "unreachable (HTTP 503)" in rows[urls[2]]["error"]
    assert rows[urls[2]]["error"].startswith("RobotsTxtUnreachable: robots.txt of 127.0.0.1:")
    assert "unreachable (DownloadTimeoutError" in rows[urls[3]]["error"]
    assert rows[urls[10]]["status"] == 200
    assert len(faults.hits(path="/robots.txt", origin="recover")) == 2
    assert stats["robots/unreachable"] == 3
    assert stats["robots/truncated"] == 1
    assert len(faults.hits(path="/robots-real.txt", origin="redirect")) == 1


@pytest.mark.timeout(90)
def test_n16_crawl_delay_is_honoured_with_autothrottle_on(
    faults: FaultServer, tmp_path: Path
) -> None:
    urls = [faults.url(f"/page?case=n16d&n={n}", "delay") for n in range(3)]
    result, _ = crawl(tmp_path, urls, profile="polite")  # AutoThrottle on, jitter ±50%
    stats = assert_finished(result)
    assert {row["status"] for row in pages(result).values()} == {200}
    times = [h.time for h in faults.hits(origin="delay")]
    assert len(times) == 4  # robots.txt and the three pages
    gaps = [b - a for a, b in pairwise(times)]
    assert min(gaps) >= 2.0 - SLACK, gaps  # Crawl-delay: 2
    assert stats["robots/crawl_delay"] == 2.0
