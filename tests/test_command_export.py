"""`scrapy export` as a user runs it: round-trips, filters, the export cursor, atomicity, errors."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawler.csvcell import cell
from crawler.demo.server import DemoSite
from crawler.export.csv_writer import csv_converters
from crawler.items import ProductItem, field_specs
from crawler.stats import RunCounts
from crawler.storage import open_store
from tests.support import run_contained, run_on_terminal, scrapy_env, scrapy_here

pytestmark = pytest.mark.timeout(90)

PRODUCT_FIELDS = [spec.name for spec in field_specs(ProductItem)]
BOOKKEEPING = ["first_run_id", "last_run_id", "first_seen_at", "last_seen_at", "changed_at"]
ALL_COLUMNS = [*PRODUCT_FIELDS, *BOOKKEEPING, "row_hash"]


@dataclass
class Gadget:
    """An item class the export does not know unless EXPORT_ITEM_CLASSES names it."""

    table: ClassVar[str] = "gadgets"
    key: ClassVar[tuple[str, ...]] = ("code",)

    code: str | None = None
    weight: Decimal | None = field(default=None, metadata={"scale": 3})
    fragile: bool | None = None
    made: datetime | None = None


def run(*args: str, cwd: Path, timeout: float = 80) -> subprocess.CompletedProcess[str]:
    return run_contained(
        [sys.executable, "-m", "scrapy", *args], cwd=cwd, env=scrapy_env(),
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def export(db: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run("export", *args, "--db", str(db), cwd=cwd or db.parent)


here = scrapy_here


def product(n: int, **changes: Any) -> dict[str, Any]:
    values = {
        "sku": f"SKU-{n:04d}",
        "name": f"Product {n}",
        "price": Decimal(f"{n}.50"),
        "currency": "EUR",
        "in_stock": n % 2 == 0,
        "rating": n / 10,
        "category": "Tools",
        "description": None,
        "url": f"http://127.0.0.1:9/products/{n}",
        "image_urls": [f"http://127.0.0.1:9/img/{n}.jpg"],
    }
    return values | changes


def write_items(
    db: Path, items: list[dict[str, Any]], *, spider: str = "products", finish: bool = True,
    item_cls: type = ProductItem,
) -> int:  # fmt: skip
    """One run of ``spider`` that stores ``items``, as a crawl would; returns its id."""
    store = open_store(db)
    run_id = store.start_run(spider, arguments={}, profile=None, settings={})
    for values in items:
        store.add_item(item_cls, values)
    assert store.flush()
    if finish:
        counts = RunCounts(len(items), len(items), 0, 0, 0)
        store.finish_run(run_id, reason="finished", counts=counts, exit_status=0, stats={})
    store.close()
    return run_id


def db_rows(db: Path, table: str = "products") -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


def summary(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()  # silent when piped: only the summary
    return line


def error(done: subprocess.CompletedProcess[str], status: int) -> str:
    assert done.returncode == status, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    return line


def stored_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- round-trips against a real crawl of the demo shop -------------------------------------------
@pytest.fixture(scope="module")
def crawled(demo_site: DemoSite, tmp_path_factory: pytest.TempPathFactory, crawl_in: Any) -> Path:
    workdir = tmp_path_factory.mktemp("export")
    done = crawl_in(
        workdir, "products", "-a", f"start_url={demo_site.url}", "-a", "max_products=50"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return Path(done.db)


@pytest.mark.timeout(180)
def test_csv_round_trip(crawled: Path, tmp_path: Path) -> None:
    out = tmp_path / "products.csv"
    done = export(crawled, "products", "-o", str(out), cwd=tmp_path)
    rows = db_rows(crawled)
    assert summary(done).startswith(f"exported {len(rows)} rows to {out} in ")
    with out.open(newline="", encoding="utf-8") as handle:
        header, *cells = list(csv.reader(handle))
    assert header == ALL_COLUMNS
    assert len(cells) == len(rows) >= 40
    for row, line in zip(rows, cells, strict=True):
        expected = {name: cell(row[name]) for name in ALL_COLUMNS} | {
            "in_stock": "" if row["in_stock"] is None else "true" if row["in_stock"] else "false",
            "image_urls": " | ".join(json.loads(row["image_urls"])),
        }
        assert dict(zip(header, line, strict=True)) == expected


@pytest.mark.timeout(180)
def test_jsonl_round_trip(crawled: Path, tmp_path: Path) -> None:
    out = tmp_path / "products.jsonl"
    summary(export(crawled, "products", "-o", str(out), cwd=tmp_path))
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    rows = db_rows(crawled)
    assert len(records) == len(rows) >= 40
    for row, record in zip(rows, records, strict=True):
        assert list(record) == ALL_COLUMNS
        assert Decimal(record["price"]) == Decimal(row["price"])
        assert isinstance(record["price"], str)  # exact, never a float
        assert record["in_stock"] is (None if row["in_stock"] is None else bool(row["in_stock"]))
        assert record["image_urls"] == json.loads(row["image_urls"])
        assert stored_datetime(record["changed_at"]) == stored_datetime(row["changed_at"])
        for name in ("sku", "name", "rating", "url", "first_run_id", "row_hash"):
            assert record[name] == row[name]


@pytest.mark.timeout(180)
def test_parquet_round_trip_with_types(crawled: Path, tmp_path: Path) -> None:
    out = tmp_path / "products.parquet"
    summary(export(crawled, "products", "-o", str(out), cwd=tmp_path))
    table = pq.read_table(out)
    types = {f.name: f.type for f in table.schema}
    assert types["price"] == pa.decimal128(38, 2)
    assert types["in_stock"] == pa.bool_()
    assert types["rating"] == pa.float64()
    assert types["first_run_id"] == pa.int64()
    assert types["changed_at"] == pa.timestamp("us", tz="UTC")
    assert types["image_urls"] == pa.list_(pa.string())
    assert table.column_names == ALL_COLUMNS
    rows = db_rows(crawled)
    records = table.to_pylist()
    assert len(records) == len(rows) >= 40
    for row, record in zip(rows, records, strict=True):
        assert record["price"] == Decimal(row["price"])
        assert record["in_stock"] is (None if row["in_stock"] is None else bool(row["in_stock"]))
        assert record["image_urls"] == json.loads(row["image_urls"])
        for name in ("first_seen_at", "last_seen_at", "changed_at"):
            assert record[name] == stored_datetime(row[name])
        for name in ("sku", "name", "currency", "rating", "url", "last_run_id", "row_hash"):
            assert record[name] == row[name]


@pytest.mark.timeout(180)
def test_stdout_and_fields(crawled: Path, tmp_path: Path) -> None:
    done = export(crawled, "products", "-o", "-", "--format", "csv", "--fields", "price,sku")
    assert summary(done).startswith("exported ")
    lines = list(csv.reader(io.StringIO(done.stdout)))
    assert lines[0] == ["price", "sku"]
    assert lines[1:] == [[row["price"], row["sku"]] for row in db_rows(crawled)]


@pytest.mark.timeout(180)
def test_progress_bar_only_on_a_terminal(crawled: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    argv = [sys.executable, "-m", "scrapy", "export", "products", "-o", str(out)]
    status, text = run_on_terminal(
        [*argv, "--db", str(crawled)], cwd=tmp_path, columns=100, stdout=False
    )
    assert status == 0
    assert "\x1b[" in text  # the bar drew (and erased) itself with terminal controls
    assert f"exported {len(db_rows(crawled))} rows to {out}" in text


# --- filters -----------------------------------------------------------------------------------
@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    """Run 1 (spider a) stores products 1-5; run 2 (spider b) stores 4-8 (4 and 5 again)."""
    db = tmp_path / "store.sqlite"
    write_items(db, [product(n) for n in range(1, 6)], spider="a")
    write_items(db, [product(n) for n in range(4, 9)], spider="b")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE products SET last_seen_at = '2020-01-01T00:00:00.000+00:00'")
        conn.execute(
            "UPDATE products SET last_seen_at = '2026-03-01T12:00:00.000+00:00' WHERE sku >= ?",
            ("SKU-0007",),
        )
    return db


def exported_skus(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> list[str]:
    argv = ("export", "products", "-o", "-", "--format", "jsonl", "--fields", "sku", "--db")
    done = here(capsys, *argv, str(db), *args)
    summary(done)
    return [json.loads(line)["sku"] for line in done.stdout.splitlines()]


@pytest.mark.timeout(120)
def test_filters(two_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    skus = [f"SKU-{n:04d}" for n in range(1, 9)]
    assert exported_skus(capsys, two_runs) == skus
    assert exported_skus(capsys, two_runs, "--run", "1") == skus[:3]  # last seen by run 1
    assert exported_skus(capsys, two_runs, "--run", "2") == skus[3:]
    assert exported_skus(capsys, two_runs, "--spider", "b") == skus[3:]
    assert exported_skus(capsys, two_runs, "--since", "2026-03-01") == skus[6:]
    assert exported_skus(capsys, two_runs, "--since", "2026-03-01T13:00:00+01:00") == skus[6:]
    assert exported_skus(capsys, two_runs, "--since", "2026-03-01T12:00:01Z") == []
    assert exported_skus(capsys, two_runs, "--spider", "a", "--since", "2026-01-01") == []


# --- the export cursor ---------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_cursor_exports_only_new_and_changed_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    write_items(db, [product(n) for n in range(1, 6)])
    cursor = ("--changed-since-last-export", "daily")
    assert exported_skus(capsys, db, *cursor) == [f"SKU-{n:04d}" for n in range(1, 6)]
    assert exported_skus(capsys, db, *cursor) == []
    # a later crawl: product 2 changes its price, 3 comes back unchanged, 6 is new
    write_items(db, [product(2, price=Decimal("99.99")), product(3), product(6)])
    assert exported_skus(capsys, db, *cursor) == ["SKU-0002", "SKU-0006"]
    assert exported_skus(capsys, db, *cursor) == []
    assert (
        len(exported_skus(capsys, db, "--changed-since-last-export", "weekly")) == 6
    )  # its own cursor
    with sqlite3.connect(db) as conn:
        names = conn.execute("SELECT name, table_name, rows FROM export_cursors ORDER BY name")
        assert names.fetchall() == [("daily", "products", 0), ("weekly", "products", 6)]


@pytest.mark.timeout(120)
def test_cursor_does_not_move_when_the_export_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    write_items(db, [product(1), product(2, name="Crème brûlée")])
    args = ("products", "--changed-since-last-export", "daily", "--encoding", "ascii")
    failed = here(capsys, "export", *args, "-o", str(tmp_path / "out.csv"), "--db", str(db))
    assert error(failed, 1) == (
        "error: row 2: column name: 'è' cannot be encoded as ascii (use --encoding utf-8)"
    )
    assert exported_skus(capsys, db, "--changed-since-last-export", "daily") == [
        "SKU-0001",
        "SKU-0002",
    ]


@pytest.mark.timeout(120)
def test_cursor_waits_for_a_running_crawl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows of an unfinished run come again: a crawl may still commit rows stamped earlier."""
    db = tmp_path / "store.sqlite"
    write_items(db, [product(1)])
    cursor = ("--changed-since-last-export", "daily")
    assert exported_skus(capsys, db, *cursor) == ["SKU-0001"]
    write_items(db, [product(2)], finish=False)
    assert exported_skus(capsys, db, *cursor) == ["SKU-0002"]
    assert exported_skus(capsys, db, *cursor) == ["SKU-0002"]  # at least once, never skipped
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET finished_at = started_at, finish_reason = 'finished'")
    assert exported_skus(capsys, db, *cursor) == ["SKU-0002"]
    assert exported_skus(capsys, db, *cursor) == []


# --- atomic output -----------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_failure_mid_export_leaves_the_previous_file(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    items = [product(n) for n in range(1, 3001)] + [product(3001, name="Smörgåsbord")]
    write_items(db, items)
    out = tmp_path / "out" / "products.csv"
    out.parent.mkdir()
    out.write_bytes(b"previous,export\r\n1,2\r\n")
    done = export(
        db, "products", "-o", str(out), "--encoding", "ascii", "-s", "EXPORT_BATCH_ROWS=500"
    )
    assert error(done, 1) == (
        "error: row 3001: column name: 'ö' cannot be encoded as ascii (use --encoding utf-8)"
    )
    assert out.read_bytes() == b"previous,export\r\n1,2\r\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["products.csv"]  # no temp file left


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_corrupt_row_fails_every_format(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    write_items(db, [product(n) for n in range(1, 2001)])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE products SET image_urls = 'not json' WHERE sku = 'SKU-1500'")
    out = tmp_path / f"products.{fmt}"
    out.write_bytes(b"previous")
    small_batches = ("-s", "EXPORT_BATCH_ROWS=400")
    done = here(capsys, "export", "products", "-o", str(out), "--db", str(db), *small_batches)
    assert error(done, 1).startswith(
        "error: row 1500: column image_urls: cannot read 'not json' as list: "
        if fmt != "parquet"
        else "error: row 1500: column image_urls: cannot write 'not json' as list: "
    )
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.timeout(60)
def test_output_is_replaced_only_when_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    write_items(db, [product(1)])
    out = tmp_path / "products.jsonl"
    out.write_text("old\n", encoding="utf-8")
    summary(here(capsys, "export", "products", "-o", str(out), "--db", str(db)))
    assert json.loads(out.read_text(encoding="utf-8"))["sku"] == "SKU-0001"


@pytest.mark.timeout(60)
def test_formulas_are_neutralised_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    write_items(db, [product(1, name='=HYPERLINK("http://evil.test")', category="@SUM(1)")])
    argv = ("export", "products", "-o", "-", "--format", "csv", "--fields", "name,category,price")
    safe = here(capsys, *argv, "--db", str(db)).stdout.splitlines()
    assert safe[1] == '"\'=HYPERLINK(""http://evil.test"")",\'@SUM(1),1.50'
    raw = here(capsys, *argv, "--db", str(db), "--no-neutralize").stdout.splitlines()
    assert raw[1] == '"=HYPERLINK(""http://evil.test"")",@SUM(1),1.50'


# --- types from the item class, or from SQLite ---------------------------------------------------
@pytest.mark.timeout(90)
def test_unknown_item_class_falls_back_to_sqlite_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.sqlite"
    made = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    write_items(db, [{"code": "g1", "weight": Decimal("1.5"), "fragile": True, "made": made}],
                item_cls=Gadget)  # fmt: skip
    out = tmp_path / "g.parquet"
    summary(here(capsys, "export", "gadgets", "-o", str(out), "--db", str(db)))
    plain = pq.read_table(out)
    assert plain.schema.field("weight").type == pa.string()
    assert plain.schema.field("fragile").type == pa.int64()
    known = ("-s", "EXPORT_ITEM_CLASSES=tests.test_command_export.Gadget")
    summary(here(capsys, "export", "gadgets", "-o", str(out), "--db", str(db), *known))
    typed = pq.read_table(out)
    assert typed.schema.field("weight").type == pa.decimal128(38, 3)  # the declared scale
    assert typed.schema.field("fragile").type == pa.bool_()
    record = typed.to_pylist()[0]
    assert (record["weight"], record["fragile"], record["made"]) == (Decimal("1.5"), True, made)


def test_csv_cells_follow_the_crawl_rules() -> None:
    """The export's per-type fast paths give exactly what the crawl's ``cell()`` gives."""
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    stored_and_python = [
        (str, "=HYPERLINK(1)", "=HYPERLINK(1)"),
        (str, "a\x00b", "a\x00b"),
        (int, 7, 7),
        (float, 2.5, 2.5),
        (bool, 1, True),
        (bool, 0, False),
        (Decimal, "1234.50", Decimal("1234.50")),
        (datetime, when.isoformat(), when),
        (list, '["=a", "b"]', ["=a", "b"]),
    ]
    for neutralize in (True, False):
        converters = csv_converters(neutralize)
        for kind, stored, value in stored_and_python:
            assert converters[kind](stored) == cell(value, neutralize), (kind, stored)


# --- bad input -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("small") / "store.sqlite"
    write_items(db, [product(1)])
    return db


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["nope", "-o", "x.csv"], 2, "error: no item table 'nope' in the store (tables: products)"),
        (["products", "-o", "x.csv", "--since", "yesterday"], 2,
         "error: --since 'yesterday' is not an ISO date or date-time (e.g. 2026-11-25 or"
         " 2026-11-25T08:00:00+00:00)"),
        (["products", "-o", "x.csv", "--fields", "sku,colour"], 2,
         "error: unknown field(s) colour; valid fields: " + ", ".join(ALL_COLUMNS)),
        (["products", "-o", "x.csv", "--fields", "sku,sku"], 2,
         "error: --fields names a field twice"),
        (["products", "-o", "x.txt"], 2,
         "error: cannot tell the format of 'x.txt': give --format csv|jsonl|parquet"),
        (["products", "-o", "-"], 2,
         "error: cannot tell the format of stdout: give --format csv|jsonl|parquet"),
        (["products", "-o", "x", "--format", "xml"], 2,
         "error: unknown format 'xml': choose csv, jsonl, parquet"),
        (["products", "-o", "x.csv", "--run", "first"], 2,
         "error: --run 'first' is not a run id (a number)"),
        (["products", "-o", "x.csv", "--run", "42"], 2,
         "error: no run 42 in {db} (see `scrapy runs`)"),
        (["products", "-o", "x.csv", "--spider", "shop"], 2,
         "error: no runs of spider 'shop' in {db} (products)"),
        (["products", "-o", "x.jsonl", "--encoding", "latin-1"], 2,
         "error: --encoding applies to CSV only (jsonl is always UTF-8 or binary)"),
        (["products", "-o", "x.csv", "--encoding", "klingon"], 2,
         "error: unknown encoding 'klingon'"),
        (["products"], 2, "error: give the output with -o FILE (or -o - for stdout)"),
        ([], 2, "error: give one table to export: scrapy export TABLE -o FILE"),
        (["products", "-o", "x.csv", "-s", "EXPORT_PARQUET_COMPRESSION=zip"], 2,
         "error: EXPORT_PARQUET_COMPRESSION 'zip': choose none, snappy, gzip, brotli, zstd, lz4"),
        (["products", "-o", "blocker/x.csv"], 1,
         "error: cannot write blocker/x.csv: Not a directory"),
    ],
)  # fmt: skip
def test_bad_input(
    small_db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    status: int,
    message: str,
) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be", encoding="utf-8")
    done = here(capsys, "export", *args, "--db", str(small_db), cwd=tmp_path)
    assert error(done, status) == message.format(db=small_db)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]  # nothing written


@pytest.mark.timeout(60)
def test_missing_store_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "none.sqlite"
    for extra in ([], ["--changed-since-last-export", "daily"]):
        argv = ("export", "products", "-o", "x.csv", "--db", str(db), *extra)
        done = here(capsys, *argv, cwd=tmp_path)
        assert error(done, 1) == (
            f"error: {db}: no store there (does not exist); run a crawl first or give --db"
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
def test_not_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "fake.sqlite"
    fake.write_text("hello", encoding="utf-8")
    done = here(capsys, "export", "products", "-o", "x.csv", "--db", str(fake), cwd=tmp_path)
    assert error(done, 1) == f"error: {fake}: cannot read the store: file is not a database"


@pytest.mark.timeout(60)
def test_reading_never_migrates(
    small_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "old.sqlite"
    shutil.copy(small_db, db)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE IF EXISTS export_cursors")
        conn.execute("PRAGMA user_version = 1")
    summary(here(capsys, "export", "products", "-o", str(tmp_path / "x.csv"), "--db", str(db)))
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


@pytest.mark.timeout(60)
def test_missing_pyarrow_names_the_extra(small_db: Path, tmp_path: Path) -> None:
    blocked = (
        "import sys; sys.modules['pyarrow'] = None; sys.argv[0] = 'scrapy';"
        " from scrapy.cmdline import execute; execute()"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked, "export", "products", "-o", "x.parquet", "--db",
         str(small_db)],
        cwd=tmp_path, env=scrapy_env(), capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip
    assert error(done, 2) == ("error: Parquet export needs pyarrow: pip install 'crawler[parquet]'")
    assert list(tmp_path.iterdir()) == []
