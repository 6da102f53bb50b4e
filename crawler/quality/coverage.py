"""Field coverage counting, without Scrapy: per item table, the items and the filled values of
each field. ``crawler.extensions.coverage.FieldCoverage`` counts a crawl's items with it, and
``crawler.frontier.ingest.Ingester`` the items a Redis crawl's workers stream to ``scrapy
ingest``; the result is the ``COVERAGE`` stat's shape (``{table: {"items": n, "fields":
{field: filled}}}``) that ``crawler.storage.quality`` stores and the checks across runs read.

A value is filled unless it is None, a blank string or an empty list/dict/tuple/set. A table
tracks its first ``max_fields`` fields (``COVERAGE_MAX_FIELDS``); the filled values of any later
ones are summed as ``stats.COVERAGE_OTHER`` (dicts with free-form keys stay bounded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler import stats as keys

if TYPE_CHECKING:
    from collections.abc import Iterable

_CONTAINERS = (list, dict, tuple, set, frozenset)


def filled(value: Any) -> bool:
    """A value that counts as present: not None, not blank text, not an empty container."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value) and not value.isspace()
    if isinstance(value, _CONTAINERS):
        return bool(value)
    return True


class TableCoverage:
    """The counts of one item table."""

    __slots__ = ("fields", "items", "max_fields", "other", "overflow")

    def __init__(self, max_fields: int) -> None:
        self.items = 0
        self.fields: dict[str, int] = {}
        self.max_fields = max_fields
        self.other = 0  # filled values of the fields past max_fields
        self.overflow = False

    def count(self, name: str, value: Any) -> None:
        # filled(value), inlined: this runs for every field of every item
        if value is None:
            hit = False
        elif isinstance(value, str):
            hit = bool(value) and not value.isspace()
        elif isinstance(value, _CONTAINERS):
            hit = bool(value)
        else:
            hit = True
        fields = self.fields
        if name in fields:
            if hit:
                fields[name] += 1
        elif len(fields) < self.max_fields:
            fields[name] = 1 if hit else 0
        else:
            self.overflow = True
            if hit:
                self.other += 1

    def as_dict(self) -> dict[str, Any]:
        fields: dict[str, int] = dict(self.fields)
        if self.overflow:
            fields[keys.COVERAGE_OTHER] = self.other
        return {"items": self.items, "fields": fields}


class CoverageCounter:
    """The coverage of every item table of a run (or of one process of it)."""

    def __init__(self, max_fields: int) -> None:
        if max_fields < 1:
            raise ValueError(f"COVERAGE_MAX_FIELDS must be at least 1, not {max_fields}")
        self.max_fields = max_fields
        self.tables: dict[str, TableCoverage] = {}

    def __bool__(self) -> bool:
        return bool(self.tables)

    def table(self, name: str) -> TableCoverage:
        """The counts of table ``name`` (new ones start empty); a caller that counts many items
        of one table keeps it and counts on it directly."""
        found = self.tables.get(name)
        if found is None:
            found = self.tables[name] = TableCoverage(self.max_fields)
        return found

    def add(self, table: str, values: Iterable[tuple[str, Any]]) -> None:
        """One item of ``table`` with its ``(field, value)`` pairs."""
        counts = self.table(table)
        counts.items += 1
        for name, value in values:
            counts.count(name, value)

    def coverage(self) -> dict[str, dict[str, Any]]:
        return {name: table.as_dict() for name, table in sorted(self.tables.items())}
