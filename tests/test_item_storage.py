"""Storing items of every type: table names, inferred and widened columns, keys, bad input.

The SQLite and CSV pipelines run on a real SQLite file and a real export dir; the export
command reads the store back."""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import scrapy
from scrapy import Spider
from scrapy.utils.test import get_crawler
from twisted.internet import task

from crawler.pipelines.csv_file import CsvPipeline
from crawler.pipelines.dedupe import DedupePipeline
from crawler.pipelines.sqlite import SQLitePipeline
from tests.support import scrapy_here

if TYPE_CHECKING:
    from pathlib import Path

    from scrapy.crawler import Crawler

pytestmark = pytest.mark.timeout(60)


class QuotesSpider(Spider):
    name = "quotes"


class UntypedQuote(scrapy.Item):
    text = scrapy.Field()
    tags = scrapy.Field()


def make_crawler(tmp_path: Path, spider: type[Spider] = QuotesSpider, **settings: Any) -> Crawler:
    values = {
        "SQLITE_ENABLED": True,
        "SQLITE_PATH": str(tmp_path / "crawler.sqlite"),
        "CSV_EXPORT_DIR": str(tmp_path / "out"),
        **settings,
    }
    crawler = get_crawler(spider, values)
    crawler.spider = spider.from_crawler(crawler)
    return crawler


def store_items(tmp_path: Path, *items: Any, **settings: Any) -> Crawler:
    """Run ``items`` through a fresh SQLitePipeline (one crawl) and close it."""
    crawler = make_crawler(tmp_path, **settings)
    pipeline = SQLitePipeline.from_crawler(crawler)
    pipeline.clock = task.Clock()
    pipeline.open_spider()
    for item in items:
        assert pipeline.process_item(item) is item
    pipeline.close_spider()
    return crawler


def query(tmp_path: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    with sqlite3.connect(tmp_path / "crawler.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def columns(tmp_path: Path, table: str) -> dict[str, tuple[str, str | None]]:
    """original key -> (column, kind)"""
    rows = query(tmp_path, "SELECT * FROM item_columns WHERE table_name = ?", table)
    return {r["item_key"]: (r["column_name"], r["kind"]) for r in rows}


def export_jsonl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str
) -> list[dict[str, Any]]:
    out = tmp_path / f"{table}.jsonl"
    db = str(tmp_path / "crawler.sqlite")
    done = scrapy_here(capsys, "export", table, "-o", str(out), "--db", db)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def csv_rows(tmp_path: Path, *items: Any, spider: type[Spider] = QuotesSpider) -> list[list[str]]:
    crawler = make_crawler(tmp_path, spider)
    pipe = CsvPipeline.from_crawler(crawler)
    asyncio.run(pipe.open_spider())
    for item in items:
        pipe.process_item(item)
    pipe.close_spider()
    (path,) = sorted((tmp_path / "out").glob("*.csv"))
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# --- table names -----------------------------------------------------------------------------
def test_table_names_follow_the_rules() -> None:
    from crawler.itemtables import TableRules, safe_table, snake_case

    settings = get_crawler(QuotesSpider).settings
    rules = TableRules.from_settings(settings, QuotesSpider())
    assert rules.place({"a": 1}).table == "quotes"
    assert rules.place(UntypedQuote(text="t")).table == "untyped_quote"
    assert snake_case("HTTPPageItem") == "http_page_item"
    assert safe_table("runs") == "runs_items"
    assert safe_table("item_columns") == "item_columns_items"
    assert safe_table('x"; DROP TABLE runs; --') == "x_drop_table_runs"
    assert safe_table("9 Café") == "t_9_cafe"
    assert safe_table("") == "t_"
    assert safe_table("sqlite_master") == "t_sqlite_master"

    class Own(Spider):
        name = "own"
        item_table = "Citations"
        item_tables = {"UntypedQuote": "quotes untyped"}

    own = TableRules.from_settings(settings, Own())
    assert own.place({"a": 1}).table == "citations"
    assert own.place(UntypedQuote()).table == "quotes_untyped"
    crawler = get_crawler(Own, {"ITEM_TABLES": {"own": "runs", "UntypedQuote": "u"}})
    overridden = TableRules.from_settings(crawler.settings, Own())
    assert overridden.place({"a": 1}).table == "runs_items"  # never the store's own table
    assert overridden.place(UntypedQuote()).table == "u"


def test_dicts_and_untyped_items_are_stored_in_their_tables(tmp_path: Path) -> None:
    crawler = store_items(tmp_path, {"text": "a", "tags": ["x"]}, UntypedQuote(text="b", tags=[]))
    assert [r["text"] for r in query(tmp_path, "SELECT text FROM quotes")] == ["a"]
    assert [r["text"] for r in query(tmp_path, "SELECT text FROM untyped_quote")] == ["b"]
    assert crawler.stats.get_value("sqlite/items_written") == 2


# --- inferred columns ------------------------------------------------------------------------
def test_columns_are_inferred_from_all_values_and_widen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    store_items(
        tmp_path,
        {"id": "q1", "n": 1, "ok": True, "when": when, "tags": ["a", "b"]},
        {"id": "q2", "n": 2.5, "ok": False, "when": "2026-01-02", "meta": {"page": 3}},
    )
    store_items(tmp_path, {"id": "q3", "late": 7})  # a later crawl: one more column
    kinds = {key: kind for key, (_, kind) in columns(tmp_path, "quotes").items()}
    assert kinds == {
        "id": "text", "n": "float", "ok": "bool", "when": "text", "tags": "json",
        "meta": "json", "late": "int",
    }  # fmt: skip
    rows = {r["id"]: dict(r) for r in query(tmp_path, "SELECT * FROM quotes")}
    assert rows["q1"]["tags"] == '["a", "b"]' and rows["q1"]["when"] == when.isoformat()
    assert rows["q3"]["late"] == 7 and rows["q1"]["late"] is None
    exported = {r["id"]: r for r in export_jsonl(tmp_path, capsys, "quotes")}
    assert exported["q1"]["tags"] == ["a", "b"] and exported["q2"]["meta"] == {"page": 3}
    assert exported["q1"]["n"] == 1.0 and exported["q2"]["ok"] is False


def test_a_value_that_changes_type_widens_the_column_to_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_items(tmp_path, {"k": "a", "v": 1}, {"k": "b", "v": "abc"}, {"k": "c", "v": [1]})
    assert columns(tmp_path, "quotes")["v"] == ("v", "text")
    stored = {r["k"]: r["v"] for r in query(tmp_path, "SELECT k, v FROM quotes")}
    assert stored == {"a": 1, "b": "abc", "c": "[1]"}  # nothing rewritten, nothing lost
    exported = {r["k"]: r["v"] for r in export_jsonl(tmp_path, capsys, "quotes")}
    assert exported == {"a": "1", "b": "abc", "c": "[1]"}


AWKWARD = {
    "first name": 1,
    'quote"d': 2,
    '"; DROP TABLE runs; --': 3,
    "Zitat für Café ☕": 4,
    "": 5,
    "Name": 6,
    "name": 7,
    "rowid": 8,
    "id": 9,
    "select": 10,
    "row_hash": 11,
    "_key": 12,
    "sqlite_x": 13,
    "1st": 14,
}


def test_awkward_keys_get_safe_columns_and_come_back_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_items(tmp_path, AWKWARD)
    mapped = columns(tmp_path, "quotes")
    assert mapped.keys() == AWKWARD.keys()
    names = [column for column, _ in mapped.values()]
    assert len({n.lower() for n in names}) == len(names)
    assert mapped["rowid"][0] == "rowid_" and mapped["row_hash"][0] == "row_hash_"
    assert mapped["Name"][0] == "Name" and mapped["name"][0] == "name_2"
    assert query(tmp_path, "SELECT count(*) FROM runs")  # still there
    (row,) = query(tmp_path, "SELECT * FROM quotes")
    assert {key: row[column] for key, (column, _) in mapped.items()} == AWKWARD
    (exported,) = export_jsonl(tmp_path, capsys, "quotes")
    clash = {"row_hash", "_key"}  # a bookkeeping name keeps its column name in exports
    assert {k: v for k, v in exported.items() if k in AWKWARD and k not in clash} == {
        k: v for k, v in AWKWARD.items() if k not in clash
    }
    assert exported["row_hash_"] == 11 and exported["key"] == 12


def test_keys_past_the_column_limit_go_to_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crawler.storage.inferred import MAX_INFERRED_COLUMNS

    wide = {f"key {n}": n for n in range(2000)}
    store_items(tmp_path, wide)
    assert len(columns(tmp_path, "quotes")) == MAX_INFERRED_COLUMNS
    (row,) = query(tmp_path, "SELECT _extra FROM quotes")
    extra = json.loads(row["_extra"])
    assert len(extra) == 2000 - MAX_INFERRED_COLUMNS and extra["key 1999"] == 1999
    (exported,) = export_jsonl(tmp_path, capsys, "quotes")
    assert exported["key 0"] == 0 and exported["_extra"]["key 1999"] == 1999


def test_odd_values_are_stored_without_error_or_loss(tmp_path: Path) -> None:
    deep: Any = "bottom"
    for _ in range(100):
        deep = [deep]
    store_items(
        tmp_path,
        {"k": "deep", "v": deep},
        {"k": "none", "v": None, "w": None},
        {"k": "bytes", "b": b"\xff\x00raw"},
        {"k": "lone \ud800 surrogate", "s": "bad \udcff text", "l": ["x\ud800"]},
        {"k": "big", "i": 2**70},
    )
    rows = {r["k"]: dict(r) for r in query(tmp_path, "SELECT * FROM quotes")}
    assert len(rows) == 4 + 1
    assert json.loads(rows["deep"]["v"]) == deep
    assert rows["none"]["v"] is None
    assert rows["bytes"]["b"] == b"\xff\x00raw"
    assert rows["lone \ufffd surrogate"]["s"] == "bad \ufffd text"
    assert rows["big"]["i"] == str(2**70)


def test_objects_that_are_no_items_are_kept_as_json_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "Opaque()"

    with caplog.at_level(logging.WARNING):
        crawler = store_items(tmp_path, Opaque(), Opaque(), 42)
    rows = query(tmp_path, "SELECT * FROM unplaced_items ORDER BY id")
    assert [r["item_type"] for r in rows] == ["Opaque", "Opaque", "int"]
    assert all("not an item type" in r["reason"] and r["spider"] == "quotes" for r in rows)
    assert json.loads(rows[2]["json"]) == 42
    assert crawler.stats.get_value("sqlite/unplaced_items") == 3
    assert len([r for r in caplog.records if "unplaced_items" in r.getMessage()]) == 2


# --- keys ------------------------------------------------------------------------------------
def test_rerun_upserts_schemaless_rows_by_content_or_item_keys(tmp_path: Path) -> None:
    items = [{"text": "a", "author": "x"}, {"text": "b", "author": "y"}]
    store_items(tmp_path, *items)
    store_items(tmp_path, *[dict(i) for i in items])
    assert query(tmp_path, "SELECT count(*) FROM quotes")[0][0] == 2
    keyed = tmp_path / "keyed"
    keyed.mkdir()
    store_items(keyed, *items, ITEM_KEYS={"quotes": ["author"]})
    store_items(keyed, {"text": "a2", "author": "x"}, ITEM_KEYS={"quotes": ["author"]})
    stored = {r["author"]: r["text"] for r in query(keyed, "SELECT * FROM quotes")}
    assert stored == {"x": "a2", "y": "b"}


def test_dedupe_uses_the_same_key_for_every_item_type(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path, ITEM_KEYS={"quotes": ["author"]})
    pipe = DedupePipeline.from_crawler(crawler)
    pipe.process_item({"text": "a", "author": "x"})
    with pytest.raises(scrapy.exceptions.DropItem, match="duplicate of author='x'"):
        pipe.process_item({"text": "other", "author": "x"})
    pipe.process_item(UntypedQuote(text="t"))
    with pytest.raises(scrapy.exceptions.DropItem, match="same content in untyped_quote"):
        pipe.process_item(UntypedQuote(text="t"))
    assert crawler.stats.get_value("dedupe/dropped") == 2


# --- CSV -------------------------------------------------------------------------------------
def test_csv_of_schemaless_items_has_every_key_and_json_lists(tmp_path: Path) -> None:
    rows = csv_rows(
        tmp_path,
        {"text": "a", "tags": ["x", "y"]},
        {"text": "b", "late": {"k": 1}, "raw": b"\x00\x01"},
        {"tags": [], "text": "=1+1"},
    )
    assert rows == [
        ["text", "tags", "late", "raw"],
        ["a", '["x", "y"]', "", ""],
        ["b", "", '{"k": 1}', "AAE="],
        ["'=1+1", "[]", "", ""],
    ]


def test_parquet_and_csv_exports_give_original_keys_and_real_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    store_items(
        tmp_path,
        {"text": "a", "tags": ["x", "y"], "first name": "A", "meta": {"p": 1}},
        {"text": "b", "tags": [], "first name": "B", "meta": {"p": 2}},
    )
    db = str(tmp_path / "crawler.sqlite")
    out = tmp_path / "q.parquet"
    done = scrapy_here(capsys, "export", "quotes", "-o", str(out), "--db", db)
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out).to_pylist()
    assert [(r["text"], r["tags"], r["first name"], r["meta"]) for r in table] == [
        ("a", ["x", "y"], "A", {"p": 1}),
        ("b", [], "B", {"p": 2}),
    ]
    out_csv = tmp_path / "q.csv"
    done = scrapy_here(
        capsys,
        "export",
        "quotes",
        "-o",
        str(out_csv),
        "--db",
        db,
        "--fields",
        "text,tags,first name",
    )
    assert done.returncode == 0, done.stderr
    with out_csv.open(newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [
            ["text", "tags", "first name"],
            ["a", '["x", "y"]', "A"],
            ["b", "[]", "B"],
        ]
