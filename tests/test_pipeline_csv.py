"""CsvPipeline: exact cells, atomic publication, and a file name that cannot leave its folder."""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from scrapy import Spider
from scrapy.exceptions import CloseSpider, NotConfigured
from scrapy.utils.test import get_crawler

from crawler.csvcell import cell
from crawler.items import PageItem, ProductItem, field_specs
from crawler.pipelines.csv_file import PATHS, CsvPipeline, safe_name
from crawler.stats import CSV_UNPUBLISHED, RUN_ID, recorded_verdict

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(10)


def pipeline(tmp_path: Path, spider: str = "shop", **settings: Any) -> CsvPipeline:
    settings = {"CSV_EXPORT_DIR": str(tmp_path / "out"), **settings}
    crawler = get_crawler(settings_dict=settings)
    crawler.spider = Spider.from_crawler(crawler, name=spider)
    return CsvPipeline.from_crawler(crawler)


def opened(tmp_path: Path, spider: str = "shop", **settings: Any) -> CsvPipeline:
    pipe = pipeline(tmp_path, spider, **settings)
    asyncio.run(pipe.open_spider())
    return pipe


def refused(pipe: CsvPipeline, caplog: pytest.LogCaptureFixture) -> str:
    """The one ERROR line of a pipeline that refuses to open."""
    with caplog.at_level(logging.INFO), pytest.raises(CloseSpider) as caught:
        asyncio.run(pipe.open_spider())
    assert caught.value.reason == "csv_error"
    (record,) = [r for r in caplog.records if r.name.startswith("crawler")]
    assert record.levelno == logging.ERROR
    assert record.exc_info is None
    message = record.getMessage()
    assert "\n" not in message
    return message


def read(path: str | Path, encoding: str = "utf-8") -> list[list[str]]:
    with open(path, newline="", encoding=encoding) as handle:  # noqa: PTH123
        return list(csv.reader(handle))


def product(**fields: Any) -> ProductItem:
    values: dict[str, Any] = {"sku": "A1", "name": "Mill", "price": Decimal("1234.56")}
    return ProductItem(**{**values, **fields})


def test_round_trip_exact_cells(tmp_path: Path) -> None:
    pipe = opened(tmp_path)
    pipe.process_item(
        product(
            currency="EUR",
            in_stock=True,
            rating=4.5,
            category=None,
            description='“Smart” quotes – café € naïve\nsecond line, "quoted"',
            url="http://shop.test/p/1",
            image_urls=["http://shop.test/a.jpg", "http://shop.test/b.jpg"],
        )
    )
    pipe.process_item(
        product(sku="B2", price=Decimal("0.10"), in_stock=False, name="nul\x00 and \ud800 lone")
    )
    pipe.close_spider()
    (path,) = pipe.crawler.stats.get_value(PATHS)
    header, first, second = read(path)
    assert header == [f.name for f in field_specs(ProductItem)]
    assert first == [
        "A1", "Mill", "1234.56", "EUR", "true", "4.5", "",
        "“Smart” quotes – café € naïve\nsecond line, \"quoted\"", "http://shop.test/p/1",
        "http://shop.test/a.jpg | http://shop.test/b.jpg", "http",
    ]  # fmt: skip
    assert second == ["B2", "nul and ? lone", "0.10", "", "false", "", "", "", "", "", "http"]


def test_header_is_fixed_by_the_class(tmp_path: Path) -> None:
    pipe = opened(tmp_path)
    pipe.process_item(ProductItem(sku="A1"))
    pipe.close_spider()
    (path,) = pipe.crawler.stats.get_value(PATHS)
    # fetched_with has a default ("http"); every other field is empty
    assert read(path) == [[f.name for f in field_specs(ProductItem)], ["A1"] + [""] * 9 + ["http"]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (True, "true"),
        (0, "0"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-5.00"), "-5.00"),  # numbers are never neutralised
        (-5, "-5"),
        (-0.5, "-0.5"),
        (datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC), "2024-05-06T07:08:09+00:00"),
        (["a", "b"], "a | b"),
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("+1 555", "'+1 555"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        (["=x", "y"], "'=x | y"),
        ("a=b", "a=b"),
    ],
)
def test_cell(value: Any, expected: str) -> None:
    assert cell(value) == expected


def test_formula_neutralisation_can_be_switched_off(tmp_path: Path) -> None:
    for neutralize, expected in ((True, "'=HYPERLINK(1)"), (False, "=HYPERLINK(1)")):
        pipe = opened(tmp_path / str(neutralize), CSV_NEUTRALIZE_FORMULAS=neutralize)
        pipe.process_item(product(name="=HYPERLINK(1)", price=Decimal("-1.50")))
        pipe.close_spider()
        (path,) = pipe.crawler.stats.get_value(PATHS)
        assert read(path)[1][1:3] == [expected, "-1.50"]


def test_encoding_replaces_what_it_cannot_encode(tmp_path: Path) -> None:
    pipe = opened(tmp_path, CSV_ENCODING="cp1252")
    pipe.process_item(product(name="café – €5 → ok"))
    pipe.close_spider()
    (path,) = pipe.crawler.stats.get_value(PATHS)
    assert read(path, "cp1252")[1][1] == "café – €5 ? ok"


def test_file_appears_only_at_close(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pipe = opened(tmp_path, CSV_FILENAME="{spider}-{item}.csv")
    out = tmp_path / "out"
    pipe.process_item(product())
    pipe.process_item(PageItem(url="http://a.test/"))
    pipe.process_item(product(sku="B2"))
    (part, _) = sorted(out.iterdir())
    assert not list(out.glob("*.csv"))
    assert part.name.startswith(f".shop-pages.part-{os.getpid()}-")
    with caplog.at_level(logging.INFO, logger="crawler"):
        pipe.close_spider()
    assert sorted(p.name for p in out.iterdir()) == ["shop-pages.csv", "shop-products.csv"]
    assert len(read(out / "shop-products.csv")) == 3
    stats = pipe.crawler.stats.get_stats()
    assert stats["csv/rows_written"] == 3
    assert stats["csv/files"] == 2
    assert stats[PATHS] == [str(out / "shop-products.csv"), str(out / "shop-pages.csv")]
    assert [r.getMessage() for r in caplog.records] == [
        f"CSV: {out / 'shop-products.csv'} (2 rows)",
        f"CSV: {out / 'shop-pages.csv'} (1 rows)",
    ]


def test_a_crawl_that_never_closes_leaves_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "shop-products.csv").write_text("good old data\n")
    pipe = opened(tmp_path, CSV_FILENAME="{spider}-{item}.csv")
    pipe.process_item(product())
    # the process dies here: close_spider never runs
    assert (out / "shop-products.csv").read_text() == "good old data\n"
    pipe.close_spider()
    assert read(out / "shop-products.csv")[1][0] == "A1"


def test_a_file_that_cannot_be_published_keeps_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "out" / "shop-products.csv").mkdir(parents=True)  # in the way
    pipe = opened(tmp_path, CSV_FILENAME="{spider}-{item}.csv")
    pipe.process_item(product())
    with caplog.at_level(logging.ERROR, logger="crawler"):
        pipe.close_spider()
    (record,) = caplog.records
    assert record.getMessage().startswith("CSV: cannot publish products (kept ")
    (part,) = (tmp_path / "out").glob(".shop-products.*")
    assert read(part)[1][0] == "A1"
    assert pipe.crawler.stats.get_value(PATHS) is None


def test_an_unpublished_file_fails_the_run_and_says_where_its_rows_are(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    (out / "shop-products.csv").mkdir(parents=True)  # in the way, for root too
    pipe = opened(tmp_path, CSV_FILENAME="{spider}-{item}.csv", SQLITE_PATH=str(tmp_path / "s.db"))
    pipe.process_item(product())
    pipe.process_item(product(sku="B2"))
    pipe.process_item(PageItem(url="http://a.test/"))
    pipe.crawler.stats.set_value(RUN_ID, 7)
    with caplog.at_level(logging.ERROR, logger="crawler"):
        pipe.close_spider()
    (part,) = out.glob(".shop-products.*")
    (record,) = caplog.records
    assert record.getMessage() == (
        f"CSV: cannot publish products (kept {part}): [Errno 21] Is a directory: '{part}' ->"
        f" '{out / 'shop-products.csv'}', its 2 rows are also in the store {tmp_path / 's.db'}"
        " (scrapy export products --run 7)"
    )
    stats = pipe.crawler.stats.get_stats()
    assert stats[CSV_UNPUBLISHED] == ["products"]
    assert stats[PATHS] == [str(out / "shop-pages.csv")]  # the other file is published
    # csv_error even when the health monitor is off (no verdict in the stats)
    verdict = recorded_verdict(stats, "finished")
    assert verdict.failures == (
        "csv_error: 1 CSV file not published (products), see the CSV: line",
    )
    assert verdict.exit_status == 1


def test_run_id_names_the_file(tmp_path: Path) -> None:
    pipe = opened(tmp_path, CSV_FILENAME="{run}/{spider}-{item}-{time}.csv")
    pipe.process_item(product())
    pipe.crawler.stats.set_value(RUN_ID, 42)  # set by the run recorder after pipelines open
    pipe.close_spider()
    (path,) = pipe.crawler.stats.get_value(PATHS)
    assert path == str(tmp_path / "out" / "42" / f"shop-products-{pipe.time}.csv")
    assert len(pipe.time) == 16 and pipe.time.endswith("Z")


def test_without_a_run_id_the_time_stands_in(tmp_path: Path) -> None:
    pipe = opened(tmp_path, CSV_FILENAME="{run}.csv")
    pipe.process_item(product())
    pipe.close_spider()
    assert pipe.crawler.stats.get_value(PATHS) == [str(tmp_path / "out" / f"{pipe.time}.csv")]


def test_one_name_for_two_item_classes_gets_a_suffix(tmp_path: Path) -> None:
    pipe = opened(tmp_path, CSV_FILENAME="{spider}.csv")
    pipe.process_item(product())
    pipe.process_item(PageItem(url="http://a.test/"))
    pipe.close_spider()
    names = [os.path.basename(p) for p in pipe.crawler.stats.get_value(PATHS)]  # noqa: PTH119
    assert names == ["shop.csv", "shop-pages.csv"]


def test_no_items_no_file(tmp_path: Path) -> None:
    pipe = opened(tmp_path)
    pipe.process_item(object())  # no item itemadapter reads: the store keeps it, not the CSV
    pipe.close_spider()
    assert list((tmp_path / "out").iterdir()) == []
    assert pipe.crawler.stats.get_value(PATHS) is None


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("../x.csv", "is not a file name under the export dir"),
        ("sub/../../x.csv", "is not a file name under the export dir"),
        ("/tmp/x.csv", "is not a file name under the export dir"),
        ("{nope}.csv", "unknown placeholder(s) ['nope']"),
        ("{spider.__class__}.csv", "unknown placeholder(s) ['spider.__class__']"),
    ],
)
def test_file_name_must_stay_in_the_export_dir(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, template: str, why: str
) -> None:
    message = refused(pipeline(tmp_path, CSV_FILENAME=template), caplog)
    assert message.startswith(f"CSV: CSV_FILENAME {template!r}: ")
    assert message.endswith(why)


def test_symlink_out_of_the_export_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "elsewhere")
    message = refused(pipeline(tmp_path, CSV_FILENAME="link/{item}.csv"), caplog)
    assert f"{tmp_path / 'elsewhere' / 'items.csv'} is outside {tmp_path / 'out'}" in message


def test_spider_name_is_sanitised(tmp_path: Path) -> None:
    pipe = opened(tmp_path, spider="../evil", CSV_FILENAME="{spider}-{item}.csv")
    pipe.process_item(product())
    pipe.close_spider()
    assert pipe.crawler.stats.get_value(PATHS) == [str(tmp_path / "out" / "_evil-products.csv")]
    assert safe_name("../../etc/passwd") == "_.._etc_passwd"
    assert safe_name("..") == "_"


def test_unwritable_export_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file").write_text("")
    pipe = pipeline(tmp_path, CSV_EXPORT_DIR=str(tmp_path / "file" / "out"))
    message = refused(pipe, caplog)
    assert message == f"CSV: cannot write to {tmp_path / 'file' / 'out'}: Not a directory"
    pipe.process_item(product())  # the engine still closes the pipeline: nothing breaks
    pipe.close_spider()
    assert pipe.crawler.stats.get_value(PATHS) is None


def test_unknown_encoding(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    message = refused(pipeline(tmp_path, CSV_ENCODING="klingon"), caplog)
    assert message == "CSV: unknown CSV_ENCODING 'klingon'"


def test_write_error_closes_the_spider(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    @dataclass
    class Engine:
        reasons: list[str]

        async def close_spider_async(self, *, reason: str) -> None:
            self.reasons.append(reason)

    class FullDisk:
        def writerow(self, row: list[str]) -> None:
            raise OSError(28, "No space left on device")

    pipe = opened(tmp_path)
    pipe.crawler.engine = engine = Engine([])  # type: ignore[assignment]
    pipe.process_item(product())
    pipe.outputs["products"].writer = FullDisk()
    loop = asyncio.new_event_loop()  # the engine's close is scheduled on the event loop
    asyncio.set_event_loop(loop)
    try:
        with caplog.at_level(logging.ERROR, logger="crawler"):
            assert pipe.process_item(product(sku="B2")) is not None  # the item goes on to others
            pipe.process_item(product(sku="C3"))
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    pipe.close_spider()
    assert engine.reasons == ["csv_error"]
    assert [r.getMessage() for r in caplog.records] == [
        f"CSV: cannot write to {tmp_path / 'out'}: No space left on device"
    ]
    assert list((tmp_path / "out").iterdir()) == []  # no part file, no final file


def test_disabled(tmp_path: Path) -> None:
    with pytest.raises(NotConfigured, match="CSV_ENABLED"):
        pipeline(tmp_path, CSV_ENABLED=False)


def test_part_files_of_gone_processes_are_removed_at_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    stale = out / f".shop-products.part-{ended.pid}-0badcafe"
    stale.write_text("sku\nA\n")
    ours = out / f".shop-products.part-{os.getpid()}-0badcafe"  # a live process's, kept
    ours.write_text("sku\n")
    other = out / ".notes.txt"  # not a part file
    other.write_text("keep")
    with caplog.at_level(logging.INFO):
        opened(tmp_path)
    assert not stale.exists() and ours.exists() and other.exists()
    lines = [r.getMessage() for r in caplog.records if r.name == "crawler.pipelines.csv_file"]
    assert lines == [f"CSV: removed 1 part file(s) left by crawls that are gone: {stale.name}"]
