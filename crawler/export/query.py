"""The rows an export selects, as SQL: filters by spider, run, date and export cursor.

* ``--spider NAME``: rows whose ``last_run_id`` is a run of that spider (last seen by it);
* ``--run ID``: rows whose ``last_run_id`` is ID (the rows that run saw last);
* ``--since WHEN``: rows with ``last_seen_at`` at or after WHEN (still seen since then);
* an export cursor: rows with ``changed_at`` after the cursor (new or changed since).

Rows come in ``rowid`` order (the table's natural scan order: no sort, no temporary B-tree).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crawler.export import ExportUsageError
from crawler.export.columns import to_datetime
from crawler.storage.schema import quote

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from crawler.export.columns import Column


@dataclass(frozen=True)
class RowFilter:
    spider: str | None = None
    run_id: int | None = None
    since: datetime | None = None
    changed_after: str | None = None  # a stored changed_at value (the cursor)

    def where(self) -> tuple[str, tuple[Any, ...]]:
        """``WHERE …`` (or ``""``) and its parameters."""
        terms: list[str] = []
        params: list[Any] = []
        if self.spider is not None:
            terms.append("last_run_id IN (SELECT id FROM runs WHERE spider = ?)")
            params.append(self.spider)
        if self.run_id is not None:
            terms.append("last_run_id = ?")
            params.append(self.run_id)
        if self.since is not None:
            terms.append("julianday(last_seen_at) >= julianday(?)")
            params.append(self.since.isoformat())
        if self.changed_after is not None:
            # Both sides are the store's own UTC text, so text order is time order.
            terms.append("changed_at > ?")
            params.append(self.changed_after)
        return (f" WHERE {' AND '.join(terms)}" if terms else ""), tuple(params)


def parse_since(text: str) -> datetime:
    """``2026-11-25``, ``2026-11-25T08:00``, ``…+02:00`` or ``…Z`` as UTC (naive = UTC)."""
    try:
        return to_datetime(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise ExportUsageError(
            f"--since {text!r} is not an ISO date or date-time (e.g. 2026-11-25 or"
            " 2026-11-25T08:00:00+00:00)"
        ) from None


def select(
    table: str, columns: Sequence[Column], row_filter: RowFilter
) -> tuple[str, tuple[Any, ...]]:
    where, params = row_filter.where()
    names = ", ".join(quote(column.name) for column in columns)
    return f"SELECT {names} FROM {quote(table)}{where} ORDER BY rowid", params


def count(conn: sqlite3.Connection, table: str, row_filter: RowFilter) -> int:
    where, params = row_filter.where()
    return int(conn.execute(f"SELECT count(*) FROM {quote(table)}{where}", params).fetchone()[0])


def max_changed_at(conn: sqlite3.Connection, table: str, row_filter: RowFilter) -> str | None:
    """The latest ``changed_at`` among the selected rows: where an export cursor moves to."""
    where, params = row_filter.where()
    sql = f"SELECT max(changed_at) FROM {quote(table)}{where}"
    value = conn.execute(sql, params).fetchone()[0]
    return None if value is None else str(value)


def decimal_digits(
    conn: sqlite3.Connection, table: str, column: str, row_filter: RowFilter
) -> tuple[int, int]:
    """``(integer digits, decimal places)`` of the widest stored value of a Decimal column."""
    where, params = row_filter.where()
    text = f"CAST({quote(column)} AS TEXT)"
    dot = f"instr({text}, '.')"
    places = f"CASE WHEN {dot} > 0 THEN length({text}) - {dot} ELSE 0 END"
    whole = f"CASE WHEN {dot} > 0 THEN substr({text}, 1, {dot} - 1) ELSE {text} END"
    digits = f"length(ltrim(replace({whole}, '-', ''), '0'))"
    sql = f"SELECT max({digits}), max({places}) FROM {quote(table)}{where}"
    row = conn.execute(sql, params).fetchone()
    return int(row[0] or 0), int(row[1] or 0)


def column_values(
    conn: sqlite3.Connection, table: str, column: str, row_filter: RowFilter
) -> list[Any]:
    """Every selected value of one column (to find an inferred JSON column's Parquet type)."""
    where, params = row_filter.where()
    sql = f"SELECT {quote(column)} FROM {quote(table)}{where} ORDER BY rowid"
    return [row[0] for row in conn.execute(sql, params)]
