"""The `pages` spider end to end: a real `scrapy crawl` against servers on 127.0.0.1."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from crawler.demo.server import DemoSite


@pytest.mark.timeout(90)
def test_one_record_per_input_url_even_when_it_fails(
    run_crawl: Any, demo_site: DemoSite, refused_url: str, silent_url: str, tmp_path: Path
) -> None:
    base = demo_site.url
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "\n".join(
            [
                "# demo pages",
                base,
                f"{base}products/7",
                f"{base}missing-page",
                "this is not a url",
                f"{base}old-products/99",
                refused_url,
                silent_url,
                f"{base}products/7",  # repeated: fetched once
            ]
        ),
        encoding="utf-8",
    )
    result = run_crawl(
        "pages", "-a", f"urls={urls}", "-s", "DOWNLOAD_TIMEOUT=1", "-s", "RETRY_TIMES=0"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{urls}:5: skipped invalid URL 'this is not a url'" in result.stderr
    rows = {r["url"]: r for r in result.rows("SELECT * FROM pages")}
    assert len(rows) == 6
    home = rows[base]
    assert (home["status"], home["title"], home["language"]) == (200, "Demo Shop", "en")
    assert home["internal_links"] > 10 and home["word_count"] > 10
    legacy = rows[f"{base}products/7"]
    assert legacy["title"] == "Café Crème – Deluxe Grinder | Demo Shop"
    assert legacy["canonical"] == f"{base}products/7"
    missing = rows[f"{base}missing-page"]
    assert (missing["status"], missing["error"]) == (404, "HTTP 404")
    moved = rows[f"{base}old-products/99"]
    assert (moved["status"], moved["final_url"]) == (200, f"{base}products/99")
    refused = rows[refused_url]
    assert refused["status"] is None and "ConnectionRefused" in refused["error"]
    silent = rows[silent_url]
    assert silent["status"] is None and "TimeoutError" in silent["error"]
    (run,) = result.rows("SELECT * FROM runs")
    assert (run["spider"], run["finish_reason"], run["items"]) == ("pages", "finished", 6)
    assert run["errors"] == 3
    assert len(result.csv_rows()) == 6


@pytest.mark.timeout(60)
def test_csv_input_and_url_arguments(run_crawl: Any, demo_site: DemoSite, tmp_path: Path) -> None:
    base = demo_site.url
    urls = tmp_path / "urls.csv"
    urls.write_text(f"id,url\n1,{base}about\n2,{base}legacy\n", encoding="utf-8")
    result = run_crawl(
        "pages", "-a", f"urls={urls}", "-a", f"url={base}slow", "-a", f"url={base}catalog/"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    titles = {r["url"]: r["title"] for r in result.rows("SELECT url, title FROM pages")}
    assert titles == {
        f"{base}about": "About us",
        f"{base}legacy": "Crème brûlée – the legacy page",
        f"{base}slow": "Slow page",
        f"{base}catalog/": titles[f"{base}catalog/"],
    }
    assert titles[f"{base}catalog/"]


@pytest.mark.timeout(60)
def test_rerun_updates_rows_instead_of_duplicating(run_crawl: Any, demo_site: DemoSite) -> None:
    first = run_crawl("pages", "-a", f"url={demo_site.url}about")
    second = run_crawl("pages", "-a", f"url={demo_site.url}about")
    assert first.returncode == second.returncode == 0
    (row,) = second.rows("SELECT first_run_id, last_run_id FROM pages")
    assert (row["first_run_id"], row["last_run_id"]) == (1, 2)
    assert [r["id"] for r in second.rows("SELECT id FROM runs ORDER BY id")] == [1, 2]


@pytest.mark.timeout(120)
def test_shards_in_parallel_processes_fetch_every_url_once(
    run_crawl: Any, demo_site: DemoSite, tmp_path: Path
) -> None:
    # two processes on the same file and the same store, as bench "ours, 2 processes" runs them
    urls = [f"{demo_site.url}products/{n}" for n in range(1, 121)]
    listed = tmp_path / "urls.txt"
    listed.write_text("\n".join([*urls, "not a url", urls[0]]) + "\n", encoding="utf-8")
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(
                lambda part: run_crawl(
                    "pages", "-a", f"urls={listed}", "-a", f"shard={part}/2", subprocess=True
                ),
                (0, 1),
            )
        )
    for result in runs:
        assert result.returncode == 0, result.stderr[-2000:]
    stored = runs[0].rows("SELECT url, first_run_id FROM pages")
    assert sorted(r["url"] for r in stored) == sorted(urls)  # each URL once, none lost
    per_run = {r["first_run_id"] for r in stored}
    assert per_run == {1, 2}  # both processes did a share
    stats = [runs[0].rows("SELECT stats FROM runs WHERE id = ?", n)[0]["stats"] for n in (1, 2)]
    assert sum('"seeds/invalid": 1' in s for s in stats) == 1  # the bad line reported once
    # each run published its own CSV file: none replaced the other
    csv_rows = sum(len(Path(p).read_text().splitlines()) - 1 for p in runs[0].csv_files())
    assert len(runs[0].csv_files()) == 2 and csv_rows == len(urls)
