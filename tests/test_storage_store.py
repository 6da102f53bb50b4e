"""The SQLite store on a real file: migrations, item tables, upserts, batches, reads, failures."""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from crawler.items import ProductItem
from crawler.stats import RunCounts
from crawler.storage import Store, StoreConfig, StoreError, open_store
from crawler.storage.schema import MIGRATIONS, ItemTable, migrate

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.timeout(30)


@dataclass
class ThingV1:
    table: ClassVar[str] = "things"
    key: ClassVar[tuple[str, ...]] = ("code",)

    code: str | None = None
    name: str | None = None


@dataclass
class ThingV2:
    table: ClassVar[str] = "things"
    key: ClassVar[tuple[str, ...]] = ("code",)

    code: str | None = None
    name: str | None = None
    weight: float | None = None


@dataclass
class Typed:
    table: ClassVar[str] = "typed"
    key: ClassVar[tuple[str, ...]] = ("id",)

    id: int | None = None
    flag: bool | None = None
    seen: datetime | None = None
    tags: list[str] = field(default_factory=list)
    price: Decimal | None = None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "data" / "crawler.sqlite") as opened:
        yield opened


def raw(store: Store) -> sqlite3.Connection:
    """A second, independent connection to the store's file, for assertions."""
    conn = sqlite3.connect(store.config.path)
    conn.row_factory = sqlite3.Row
    return conn


def product(sku: str, price: str = "9.99", **extra: Any) -> ProductItem:
    return ProductItem(
        sku=sku, name=f"Item {sku}", price=Decimal(price), currency="EUR", url=f"http://x/{sku}",
        **extra,
    )  # fmt: skip


def write(store: Store, *items: Any) -> None:
    for item in items:
        store.add_item(type(item), vars(item))
    assert store.flush()


def test_open_creates_parent_dirs_wal_and_pragmas(store: Store) -> None:
    conn = store.conn
    assert store.config.path.exists()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "crawler.sqlite"
    with open_store(path) as first:
        run_id = first.start_run("s", arguments={}, profile="fast", settings={})
    with open_store(path) as again:
        assert again.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert migrate(again.conn) == len(MIGRATIONS)
        assert again.run(run_id) is not None
        names = {r[0] for r in again.conn.execute("SELECT name FROM sqlite_master")}
        assert {"runs", "rejects", "fetch_state"} <= names


def test_bad_synchronous_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError,
        match=re.escape("SQLITE_SYNCHRONOUS must be OFF|NORMAL|FULL|EXTRA, not 'SOMETIMES'"),
    ):
        StoreConfig(tmp_path / "x.sqlite", synchronous="SOMETIMES")


def test_item_table_has_field_and_bookkeeping_columns_and_key_index(store: Store) -> None:
    write(store, product("A"))
    columns = {r["name"]: r["type"] for r in store.conn.execute("PRAGMA table_info(products)")}
    assert columns["price"] == "TEXT" and columns["in_stock"] == "INTEGER"
    assert columns["rating"] == "REAL" and columns["image_urls"] == "TEXT"
    assert {"first_run_id", "last_run_id", "first_seen_at", "last_seen_at"} <= columns.keys()
    assert {"changed_at", "row_hash"} <= columns.keys()
    indexes = store.conn.execute("PRAGMA index_list(products)").fetchall()
    assert any(r["unique"] and r["name"] == "products_key" for r in indexes)


def test_new_field_adds_a_column_and_keeps_rows(store: Store) -> None:
    write(store, ThingV1(code="a", name="old"))
    write(store, ThingV2(code="b", name="new", weight=1.5))
    write(store, ThingV1(code="c"), ThingV2(code="d", weight=2.0))  # both shapes in one batch
    rows = {r["code"]: r for r in store.rows("things")}
    assert rows["a"]["name"] == "old" and rows["a"]["weight"] is None
    assert rows["b"]["weight"] == 1.5 and rows["d"]["weight"] == 2.0
    assert store.count("things") == 4


def test_unstorable_item_classes_are_type_errors() -> None:
    @dataclass
    class Reserved:
        url: str | None = None
        row_hash: str | None = None

    @dataclass
    class CoreName:
        table: ClassVar[str] = "runs"
        url: str | None = None

    @dataclass
    class BadName:
        table: ClassVar[str] = 'x"; DROP TABLE runs; --'
        url: str | None = None

    for cls, message in [(Reserved, "reserved"), (CoreName, "reserved"), (BadName, "valid")]:
        with pytest.raises(TypeError, match=message):
            ItemTable.for_class(cls)


def test_recrawl_updates_rows_without_duplicates(store: Store) -> None:
    store.run_id = store.start_run("s", arguments={}, profile=None, settings={})
    write(store, product("A"), product("B"))
    first = {r["sku"]: r for r in store.rows("products")}
    store.now = lambda: "2999-01-01T00:00:00.000+00:00"  # a later crawl
    store.run_id = store.start_run("s", arguments={}, profile=None, settings={})
    write(store, product("A"), product("B", price="5.00"))
    rows = {r["sku"]: r for r in store.rows("products")}
    assert store.count("products") == 2
    assert rows["B"]["price"] == "5.00"
    for sku in "AB":
        assert rows[sku]["first_run_id"] == first[sku]["first_run_id"] == store.run_id - 1
        assert rows[sku]["last_run_id"] == store.run_id
        assert rows[sku]["first_seen_at"] == first[sku]["first_seen_at"]
        assert rows[sku]["last_seen_at"] > first[sku]["last_seen_at"]
    assert rows["A"]["changed_at"] == first["A"]["changed_at"] == first["A"]["first_seen_at"]
    assert rows["A"]["row_hash"] == first["A"]["row_hash"]
    assert rows["B"]["changed_at"] == rows["B"]["last_seen_at"]


def test_values_round_trip_exactly(store: Store) -> None:
    seen = datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    write(store, Typed(id=1, flag=True, seen=seen, tags=["a", "é"], price=Decimal("0.10")))
    write(store, Typed(id=2, flag=False, price=Decimal("12345678901234567890.000000001")))
    rows = {r["id"]: r for r in store.rows("typed")}
    assert rows[1]["flag"] == 1 and rows[2]["flag"] == 0
    assert datetime.fromisoformat(rows[1]["seen"]) == seen.astimezone(UTC)
    assert rows[1]["seen"] == "2024-05-01T12:30:00+00:00"
    assert rows[1]["tags"] == '["a", "é"]'
    assert Decimal(rows[1]["price"]) == Decimal("0.10") and rows[1]["price"] == "0.10"
    assert rows[2]["price"] == "12345678901234567890.000000001"
    kinds = store.conn.execute("SELECT typeof(price) FROM typed").fetchall()
    assert {k[0] for k in kinds} == {"text"}


def test_failed_batch_is_rolled_back_whole_and_kept(store: Store) -> None:
    write(store, product("seed"))  # creates the table
    store.conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON products WHEN NEW.sku = 'bad'"
        " BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
    )
    for item in (product("A"), product("bad"), product("C")):
        store.add_item(ProductItem, vars(item))
    store.add_reject("ProductItem", {"sku": "Z"}, "no price")
    assert not store.flush()
    assert store.count("products") == 1 and store.count("rejects") == 0
    assert (store.pending_items, store.pending_rejects) == (3, 1)
    assert store.last_error is not None and "refused by test" in str(store.last_error)
    store.conn.execute("DROP TRIGGER refuse")
    assert store.flush()
    assert store.count("products") == 4 and store.count("rejects") == 1
    assert store.pending_items == 0 and store.failed_flushes == 0


def test_flush_due_by_size_and_by_time(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite", batch_size=2, batch_seconds=0.2) as store:
        assert not store.flush_due()
        store.add_item(ProductItem, vars(product("A")))
        assert not store.flush_due()
        store.add_item(ProductItem, vars(product("B")))
        assert store.flush_due()
        assert store.flush()
        store.add_item(ProductItem, vars(product("C")))
        assert not store.flush_due()
        store._last_flush -= 0.5  # as if 0.5 s had passed
        assert store.flush_due()


def test_runs_reads_and_json_columns(store: Store) -> None:
    first = store.start_run("pages", arguments={"url": ["u"]}, profile="polite", settings={})
    second = store.start_run("site", arguments={}, profile="fast", settings={"A": 1})
    counts = RunCounts(pages=3, items=2, rejects=1, duplicates=0, errors=0)
    store.finish_run(second, reason="finished", counts=counts, exit_status=0, stats={"x": 1})
    assert [r["id"] for r in store.runs(limit=5)] == [second, first]
    assert [r["id"] for r in store.runs(limit=1)] == [second]
    run = store.run(second)
    assert run is not None
    assert run["settings"] == {"A": 1} and run["stats"] == {"x": 1}
    assert (run["finish_reason"], run["pages"], run["items"], run["rejects"]) == (
        "finished", 3, 2, 1,
    )  # fmt: skip
    assert store.run(first)["arguments"] == {"url": ["u"]}  # type: ignore[index]
    assert store.run(999) is None


def test_unopenable_path_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = Store(StoreConfig(tmp_path / "file" / "crawler.sqlite"))
    with pytest.raises(StoreError) as caught:
        store.open()
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'file' / 'crawler.sqlite'}: ")
    assert "\n" not in message and "Not a directory" in message
    with pytest.raises(StoreError):  # the same error again, without a retry
        store.open()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(StoreError, match=r"not writable|Permission denied|unable to open"):
            open_store(locked / "crawler.sqlite")
    finally:
        locked.chmod(0o700)
