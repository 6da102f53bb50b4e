"""``RunCsv``: the CSV files of one ``scrapy ingest`` run, one per table, as ``CsvPipeline`` writes
them for a crawl (same settings, names, cells, part files published atomically at the end).

Items arrive as values and placements from the Redis stream, not as item objects, so this writes
from those; an item delivered twice in one run (a re-leased request) is written once.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from crawler.atomicfile import create_part, discard, part_path, publish
from crawler.csvcell import cell
from crawler.pipelines.csv_file import remove_stale_parts, resolve_path, safe_name, schemaless_cell

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from crawler.itemtables import Placement
    from crawler.pipelines.csv_file import CsvConfig

logger = logging.getLogger(__name__)


@dataclass
class _File:
    fields: list[str]
    handle: IO[str]
    writer: Any
    schemaless: bool
    header: int = 0  # fields named by the header written first
    rows: int = 0
    keys: set[str] = field(default_factory=set)  # row keys written (one row per item)


class RunCsv:
    def __init__(self, config: CsvConfig, spider: str) -> None:
        self.config = config
        self.spider = spider
        self.time = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.root = config.export_dir.resolve()
        self.files: dict[str, _File] = {}

    def open(self) -> None:
        """Check the directory and the name template now (``OSError``, ``CsvConfigError``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        resolve_path(self.root, self.config.filename, spider=self.spider, item="items",
                     run="0", time=self.time)  # fmt: skip
        remove_stale_parts(self.root)

    def write(self, placement: Placement, values: Mapping[str, Any], row_key: str) -> None:
        out = self._file(placement)
        if row_key in out.keys:
            return
        out.keys.add(row_key)
        neutralize = self.config.neutralize_formulas
        if out.schemaless:
            for key in values:
                if str(key) not in out.fields:
                    out.fields.append(str(key))
            if out.rows == 0 and out.header == 0:
                out.writer.writerow(out.fields)
                out.header = len(out.fields)
            text = {str(k): v for k, v in values.items()}
            row = [schemaless_cell(text.get(name), neutralize) for name in out.fields]
            out.writer.writerow(row)
        else:
            out.writer.writerow([cell(values.get(name), neutralize) for name in out.fields])
        out.rows += 1

    def _file(self, placement: Placement) -> _File:
        found = self.files.get(placement.table)
        if found is not None:
            return found
        handle = self._part(placement.table)
        names = [spec.name for spec in placement.fields or ()]
        out = _File(names, handle, csv.writer(handle), schemaless=placement.fields is None)
        if not out.schemaless:
            out.writer.writerow(names)
        self.files[placement.table] = out
        return out

    def _part(self, table: str) -> IO[str]:
        return create_part(
            part_path(self.root / f"{safe_name(self.spider)}-{safe_name(table)}"), "x",
            encoding=self.config.encoding, errors="replace", newline="",
        )  # fmt: skip

    def publish(self, run_id: int) -> list[Path]:
        """Rename every file into place under its final name; the paths published."""
        paths: list[Path] = []
        for table, out in self.files.items():
            path = resolve_path(self.root, self.config.filename, spider=self.spider, item=table,
                                run=str(run_id), time=self.time)  # fmt: skip
            if path in paths:
                path = path.with_name(f"{path.stem}-{safe_name(table)}{path.suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            self._complete_header(table, out)
            publish(out.handle, path)
            logger.info("CSV: %s (%d rows)", path, out.rows)
            paths.append(path)
        self.files.clear()
        return paths

    def _complete_header(self, table: str, out: _File) -> None:
        """A schema-less file whose keys grew after its header: rewritten under the full one."""
        if not out.schemaless or len(out.fields) <= out.header:
            return
        old = out.handle
        old.flush()
        new = self._part(table)
        try:
            writer = csv.writer(new)
            writer.writerow(out.fields)
            with open(old.name, newline="", encoding=self.config.encoding, errors="replace") as f:  # noqa: PTH123
                rows = csv.reader(f)
                next(rows, None)
                for row in rows:
                    writer.writerow(row + [""] * (len(out.fields) - len(row)))
        except BaseException:
            discard(new)
            raise
        discard(old)
        out.handle, out.writer, out.header = new, writer, len(out.fields)

    def discard(self) -> None:
        for out in self.files.values():
            with contextlib.suppress(OSError):
                discard(out.handle)
        self.files.clear()
