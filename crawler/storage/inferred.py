"""Tables of schema-less items (dicts, ``scrapy.Item`` without declared types): columns inferred
from every value seen, widened additively, with the original key of each column recorded.

Columns. Each item key gets one column, named by ``column_name``: NFKC-normalised, every run of
characters other than ``A-Z a-z 0-9 _`` becomes ``_``, leading/trailing ``_`` dropped, ``f_`` put
before a name that is empty or starts with a digit or ``sqlite_``, cut to ``MAX_NAME``
characters; ``_`` appended to a name the store or SQLite uses (``rowid``, ``oid``, ``_rowid_``,
``_key``, ``_extra``, the bookkeeping columns); ``_2``, ``_3``… appended while the name is taken,
case-insensitively (``Name`` then ``name`` -> ``Name``, ``name_2``). The original key of each
column, its kind and its position are in ``item_columns`` (``table_name, column_name, item_key,
kind, position``): exports give the original keys back. A key is never dropped: past
``MAX_INFERRED_COLUMNS`` columns a table keeps further keys in its ``_extra`` column, one JSON
object per row (SQLite allows 2000 columns).

Kinds, from all values seen: ``bool``, ``int``, ``float``, ``text``, ``json`` (lists, tuples,
dicts: stored as JSON text), ``bytes`` (stored as a BLOB). ``None`` says nothing. ``bool`` with
``int`` is ``int``; ``int`` with ``float`` is ``float``; any other mix (``int`` then ``"abc"``)
widens the column to ``text``: values already stored stay as they were, later ones are stored as
they come (text as text, lists as JSON text), and exports give the column's values as text.
Datetimes and dates are ISO text, ``Decimal`` exact text, ints beyond 64 bits text, other objects
``str()``. Lone surrogates (text that is not valid Unicode) become U+FFFD. The columns are created
without a declared type, so SQLite keeps every value exactly as bound.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from crawler.storage.schema import BOOKKEEPING, bookkeeping_updates, jsonable, quote

MAX_NAME = 60
MAX_INFERRED_COLUMNS = 1000  # per table; further keys go to the JSON ``_extra`` column
KEY_COLUMN = "_key"
EXTRA_COLUMN = "_extra"
KINDS = ("bool", "int", "float", "text", "json", "bytes")
RESERVED_COLUMNS = frozenset(
    {"rowid", "oid", "_rowid_", KEY_COLUMN, EXTRA_COLUMN, *(name.lower() for name in BOOKKEEPING)}
)
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMERIC = {"bool": 0, "int": 1, "float": 2}
_INT64 = (-(2**63), 2**63 - 1)


def column_name(key: str, taken: set[str]) -> str:
    """A column name for item key ``key`` not in ``taken`` (lower-cased names)."""
    text = _NOT_IDENT.sub("_", ascii_fold(clean_text(key))).strip("_")
    if not text or text[0].isdigit() or text.lower().startswith("sqlite_"):
        text = f"f_{text}"
    text = text[:MAX_NAME]
    if text.lower() in RESERVED_COLUMNS:
        text += "_"
    name, number = text, 2
    while name.lower() in taken:
        name = f"{text}_{number}"
        number += 1
    return name


def ascii_fold(text: str) -> str:
    """NFKD-normalised with the combining marks dropped: ``"Café"`` -> ``"Cafe"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (not valid Unicode, not storable) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def kind_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if _INT64[0] <= value <= _INT64[1] else "text"
    if isinstance(value, float):
        return "float" if math.isfinite(value) else "text"
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return "json"
    return "text"


def widen(old: str | None, new: str | None) -> str | None:
    """The kind of a column that held ``old`` values and now gets a ``new`` one."""
    if old is None or old == new:
        return new
    if new is None:
        return old
    if old in _NUMERIC and new in _NUMERIC:
        return old if _NUMERIC[old] > _NUMERIC[new] else new
    return "text"


def to_stored(value: Any) -> Any:
    """One value as bound to SQLite (see the module doc)."""
    kind = kind_of(value)
    if kind is None:
        return None
    if kind == "bool":
        return int(value)
    if kind in ("int", "float"):
        return value
    if kind == "bytes":
        return bytes(value)
    if kind == "json":
        return clean_text(json.dumps(jsonable(value), ensure_ascii=False))
    if isinstance(value, date | Decimal):  # datetimes too: ISO (UTC) or exact text, as in JSON
        return jsonable(value)
    return clean_text(value if isinstance(value, str) else str(value))


@dataclass
class Column:
    key: str  # the item key, as the item had it
    name: str  # the SQL column
    kind: str | None
    position: int


@dataclass
class Record:
    """One schema-less item waiting to be written."""

    values: dict[str, Any]  # item key -> stored value
    kinds: dict[str, str | None]
    row_key: str
    row_hash: str
    seen_at: str


def make_record(values: Mapping[str, Any], row_key: str, seen_at: str) -> Record:
    """Convert the values now (the item may change after the pipeline returns it)."""
    stored: dict[str, Any] = {}
    kinds: dict[str, str | None] = {}
    for raw_key, value in values.items():
        key = raw_key if isinstance(raw_key, str) else str(raw_key)
        stored[key], kinds[key] = to_stored(value), kind_of(value)
    present = {k: v for k, v in stored.items() if v is not None}
    canonical = json.dumps(
        {k: v.hex() if isinstance(v, bytes) else v for k, v in present.items()},
        sort_keys=True,
        ensure_ascii=True,
        separators=(",", ":"),
    )
    row_hash = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return Record(stored, kinds, row_key, row_hash, seen_at)


@dataclass
class InferredTable:
    """The columns of one inferred table as the store has them (read inside the transaction)."""

    name: str
    columns: dict[str, Column] = field(default_factory=dict)  # item key -> column
    existing: dict[str, str] = field(default_factory=dict)  # lower name -> column name

    @classmethod
    def load(cls, conn: sqlite3.Connection, name: str) -> InferredTable:
        table = cls(name)
        table.existing = {
            row[1].lower(): row[1] for row in conn.execute(f"PRAGMA table_info({quote(name)})")
        }
        for key, column, kind, position in conn.execute(
            "SELECT item_key, column_name, kind, position FROM item_columns WHERE table_name = ?"
            " ORDER BY position",
            (name,),
        ):
            table.columns[key] = Column(key, column, kind, position)
        return table

    def ensure(self, conn: sqlite3.Connection) -> None:
        """Create the table, or give a table made for a declared class the columns it lacks."""
        table = quote(self.name)
        if not self.existing:
            defs = [f"{quote(KEY_COLUMN)} TEXT", f"{quote(EXTRA_COLUMN)} TEXT"]
            defs += [f"{quote(c)} {t}" for c, t in BOOKKEEPING.items()]
            conn.execute(f"CREATE TABLE {table} ({', '.join(defs)})")
        else:
            wanted = {KEY_COLUMN: "TEXT", EXTRA_COLUMN: "TEXT"} | BOOKKEEPING
            for column, sql_type in wanted.items():
                if column.lower() not in self.existing:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {quote(column)} {sql_type}")
        index = quote(f"{self.name}__key")
        conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} ({quote(KEY_COLUMN)})")
        if not self.existing:
            self.existing = {c.lower(): c for c in (KEY_COLUMN, EXTRA_COLUMN, *BOOKKEEPING)}
        else:
            self.existing |= {c.lower(): c for c in (KEY_COLUMN, EXTRA_COLUMN, *BOOKKEEPING)}

    def place(self, conn: sqlite3.Connection, records: list[Record]) -> list[str]:
        """Map every key of ``records`` to a column (adding columns, widening kinds); return
        the keys that go to ``_extra``."""
        mapped = {c.name.lower() for c in self.columns.values()}
        overflow: list[str] = []
        changed: dict[str, str | None] = {}
        for record in records:
            for key, kind in record.kinds.items():
                column = self.columns.get(key)
                if column is None:
                    if key in overflow:
                        continue
                    if len(self.columns) >= MAX_INFERRED_COLUMNS:
                        overflow.append(key)
                        continue
                    column = self._add(conn, key, kind, mapped)
                    continue
                widened = widen(column.kind, kind)
                if widened != column.kind:
                    column.kind = changed[key] = widened
        for key, kind in changed.items():
            conn.execute(
                "UPDATE item_columns SET kind = ? WHERE table_name = ? AND item_key = ?",
                (kind, self.name, key),
            )
        return overflow

    def _add(
        self, conn: sqlite3.Connection, key: str, kind: str | None, mapped: set[str]
    ) -> Column:
        candidate = column_name(key, mapped)
        # a column of the same name that no key owns yet (a declared class's table): adopt it
        adopt = candidate.lower() in self.existing and candidate.lower() not in RESERVED_COLUMNS
        if not adopt:
            candidate = column_name(key, mapped | set(self.existing))
            conn.execute(f"ALTER TABLE {quote(self.name)} ADD COLUMN {quote(candidate)}")
            self.existing[candidate.lower()] = candidate
        else:
            candidate = self.existing[candidate.lower()]
        column = Column(key, candidate, kind, len(self.columns))
        conn.execute(
            "INSERT OR REPLACE INTO item_columns"
            " (table_name, column_name, item_key, kind, position) VALUES (?, ?, ?, ?, ?)",
            (self.name, candidate, key, kind, column.position),
        )
        self.columns[key] = column
        mapped.add(candidate.lower())
        return column

    def write(self, conn: sqlite3.Connection, records: list[Record], run_id: int | None) -> None:
        """Upsert ``records`` on ``_key`` (inside the caller's transaction)."""
        self.ensure(conn)
        overflow = set(self.place(conn, records))
        keys = list(dict.fromkeys(k for r in records for k in r.values if k not in overflow))
        names = [self.columns[k].name for k in keys]
        columns = [*names, KEY_COLUMN, EXTRA_COLUMN, *BOOKKEEPING]
        table = quote(self.name)
        updates = [f"{quote(n)} = excluded.{quote(n)}" for n in (*names, EXTRA_COLUMN)]
        updates += bookkeeping_updates(table)
        sql = (
            f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)})"
            f" VALUES ({', '.join('?' for _ in columns)})"
            f" ON CONFLICT ({quote(KEY_COLUMN)}) DO UPDATE SET {', '.join(updates)}"
        )
        rows = []
        for r in records:
            extra = {
                k: _plain(v, r.kinds.get(k))
                for k, v in r.values.items()
                if k in overflow and v is not None
            }
            extra_json = clean_text(json.dumps(extra, ensure_ascii=False)) if extra else None
            seen = r.seen_at
            rows.append(
                (
                    *(r.values.get(k) for k in keys),
                    r.row_key,
                    extra_json,
                    run_id,
                    run_id,
                    seen,
                    seen,
                    seen,
                    r.row_hash,
                )
            )
        conn.executemany(sql, rows)


def _plain(value: Any, kind: str | None) -> Any:
    """A stored value back as a JSON value for ``_extra`` (JSON text decoded, bytes as hex)."""
    if isinstance(value, bytes):
        return value.hex()
    if kind == "json" and isinstance(value, str):
        return json.loads(value)
    return value


def column_kinds(conn: sqlite3.Connection, table: str) -> list[tuple[str, str, str | None]]:
    """``(column, original key, kind)`` of an inferred table, in position order; empty for a
    table of a declared class (or a store from before inferred tables)."""
    try:
        rows = conn.execute(
            "SELECT column_name, item_key, kind FROM item_columns WHERE table_name = ?"
            " ORDER BY position",
            (table,),
        ).fetchall()
    except sqlite3.OperationalError:  # no item_columns table: an older store
        return []
    return [(str(r[0]), str(r[1]), None if r[2] is None else str(r[2])) for r in rows]
