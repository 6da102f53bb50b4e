"""``CsvPipeline``: one CSV file per item class and run, renamed into place only when complete.

Settings: ``CSV_ENABLED``, ``CSV_EXPORT_DIR``, ``CSV_FILENAME`` (placeholders ``{spider}``,
``{item}``, ``{run}``, ``{time}``; the result must stay under the export dir),
``CSV_NEUTRALIZE_FORMULAS``, ``CSV_ENCODING``.

Rows go to a hidden ``.<spider>-<item>.part-<pid>-…`` file in the export dir, which is flushed,
fsynced and ``os.replace``d to its final name at close; a crawl that dies leaves only the part file,
and an existing file of the final name is only ever replaced by a complete one; the part files of
processes that are gone from this host (``.NAME.part-<pid>-<hex>``) are removed when the pipeline
opens, with one INFO line. A file that cannot
be published keeps its part file, is logged with where its rows are, and fails the run with
``csv_error`` (``csv/unpublished`` lists its tables; see ``crawler.stats.unpublished_csv``).
One file per table (``crawler.itemtables``: the same table names as the store). Columns of a
declared class are its fields in declaration order; those of a schema-less item (dict,
``scrapy.Item`` without types) are the union of the keys seen, in first-seen order: rows are
written as they come, and a header that grew after the first row is rewritten at publication
(rows written before a key appeared get an empty cell for it). Cells: ``None`` is empty,
``Decimal`` exact (``1234.56``), ``bool`` is ``true``/``false``, ``datetime`` ISO 8601, a
declared list its values joined by `` | ``; in a schema-less item a list or dict is JSON text
(``["a", "b"]``) and bytes are base64. Objects that are no item are not written (the store keeps
them in ``unplaced_items``).
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import csv
import dataclasses
import json
import logging
import re
import string
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from scrapy.exceptions import CloseSpider, NotConfigured
from scrapy.utils.defer import deferred_from_coro

from crawler import defaults
from crawler.atomicfile import create_part, discard, part_path, publish
from crawler.csvcell import cell
from crawler.frontier.itemstream import redis_items_wanted
from crawler.itemtables import TableRules, item_values
from crawler.stats import CSV_UNPUBLISHED, RUN_ID
from crawler.storage.liveness import pid_alive
from crawler.storage.schema import jsonable

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from twisted.internet.defer import Deferred

logger = logging.getLogger(__name__)

ROWS_WRITTEN = "csv/rows_written"
FILES = "csv/files"
PATHS = "csv/paths"
CSV_ERROR = "csv_error"  # the finish reason when the CSV files cannot be written
PLACEHOLDERS = frozenset({"spider", "item", "run", "time"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PART = re.compile(r"\..+\.part-(\d+)-[0-9a-f]+")  # crawler.atomicfile.part_path's names


class CsvConfigError(ValueError):
    """The CSV settings cannot work (the message is one line for users)."""


@dataclass(frozen=True)
class CsvConfig:
    export_dir: Path
    filename: str
    neutralize_formulas: bool
    encoding: str
    store_path: Path | None = None  # where the rows also are (SQLITE_PATH), named when unpublished

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> CsvConfig:
        if not settings.getbool("CSV_ENABLED", defaults.CSV_ENABLED):
            raise NotConfigured("CSV_ENABLED is off")
        return cls(
            export_dir=Path(settings.get("CSV_EXPORT_DIR", defaults.CSV_EXPORT_DIR)).expanduser(),
            filename=settings.get("CSV_FILENAME", defaults.CSV_FILENAME),
            neutralize_formulas=settings.getbool(
                "CSV_NEUTRALIZE_FORMULAS", defaults.CSV_NEUTRALIZE_FORMULAS
            ),
            encoding=settings.get("CSV_ENCODING", defaults.CSV_ENCODING),
            store_path=(
                Path(settings.get("SQLITE_PATH", defaults.SQLITE_PATH)).expanduser().absolute()
                if settings.getbool("SQLITE_ENABLED", defaults.SQLITE_ENABLED)
                else None
            ),
        )


def safe_name(value: str) -> str:
    """A placeholder value fit for one path component: ``"../evil"`` -> ``"_evil"``."""
    return _UNSAFE.sub("_", value).lstrip(".") or "_"


def resolve_path(export_dir: Path, template: str, **values: str) -> Path:
    """The file ``template`` names under ``export_dir``; ``CsvConfigError`` if it would escape."""
    try:
        names = {
            field for _, field, _, _ in string.Formatter().parse(template) if field is not None
        }
        if unknown := names - PLACEHOLDERS:
            raise CsvConfigError(f"unknown placeholder(s) {sorted(unknown)}")
        name = template.format(**{key: safe_name(value) for key, value in values.items()})
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.name:
            raise CsvConfigError(f"{name!r} is not a file name under the export dir")
        root = export_dir.resolve()
        path = (root / relative).resolve()
    except (ValueError, KeyError, IndexError) as exc:
        raise CsvConfigError(f"CSV_FILENAME {template!r}: {exc}") from None
    if not path.is_relative_to(root) or path == root:
        raise CsvConfigError(f"CSV_FILENAME {template!r}: {path} is outside {root}")
    return path


@dataclass
class _Output:
    """The part file of one item class."""

    table: str
    fields: list[str]
    handle: IO[str]
    writer: Any
    rows: int = 0
    schemaless: bool = False
    header: int = 0  # how many of ``fields`` the header written first names
    known: set[str] = dataclasses.field(default_factory=set)


def schemaless_cell(value: Any, neutralize: bool) -> str:
    """A schema-less item's cell: lists and dicts as JSON text, bytes as base64."""
    if isinstance(value, list | tuple | dict | set | frozenset):
        return cell(json.dumps(jsonable(value), ensure_ascii=False), neutralize)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    return cell(value, neutralize)


def remove_stale_parts(directory: Path) -> list[Path]:
    """Remove the part files in ``directory`` whose writing process is gone from this host
    (killed before publishing them); one INFO line names them."""
    removed: list[Path] = []
    for path in sorted(directory.glob(".*.part-*")):
        match = _PART.fullmatch(path.name)
        if match is None or pid_alive(int(match[1])) or not path.is_file():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove: left
            path.unlink()
            removed.append(path)
    if removed:
        names = ", ".join(p.name for p in removed)
        logger.info(
            "CSV: removed %d part file(s) left by crawls that are gone: %s", len(removed), names
        )
    return removed


class CsvPipeline:
    """Writes each item class to its own CSV file, published atomically at close (``CSV_*``)."""

    def __init__(self, crawler: Crawler, config: CsvConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.root = config.export_dir
        self.spider = "spider"
        self.time = ""
        self.outputs: dict[str, _Output] = {}
        self.failed = False
        self._rules: TableRules | None = None
        self._closing: Deferred[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CsvPipeline:
        if redis_items_wanted(crawler.settings):  # scrapy ingest writes one CSV per run
            raise NotConfigured("REDIS_ITEMS: items go to the Redis stream")
        return cls(crawler, CsvConfig.from_settings(crawler.settings))

    async def open_spider(self) -> None:
        """Check the export dir and file name now: a crawl that cannot save does not start."""
        # async, so that raising CloseSpider does not keep later components from opening
        self.spider = str(getattr(self.crawler.spider, "name", None) or "spider")
        self.time = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        try:
            codecs.lookup(self.config.encoding)
            self.root = self.config.export_dir.resolve()
            self.root.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=self.root).close()
            self._final_path("items", self.time)
            remove_stale_parts(self.root)
        except LookupError:
            self._refuse(f"unknown CSV_ENCODING {self.config.encoding!r}")
        except OSError as exc:
            self._refuse(f"cannot write to {self.config.export_dir}: {exc.strerror or exc}")
        except CsvConfigError as exc:
            self._refuse(str(exc))

    def _refuse(self, message: str) -> None:
        self.failed = True
        logger.error("CSV: %s", message)
        raise CloseSpider(CSV_ERROR)

    @property
    def rules(self) -> TableRules:
        if self._rules is None:
            self._rules = TableRules.from_settings(self.crawler.settings, self.crawler.spider)
        return self._rules

    def process_item(self, item: Any) -> Any:
        if self.failed:
            return item
        try:
            placement = self.rules.place(item)
            values = item_values(item)
        except (TypeError, ValueError, RecursionError):
            return item  # no item: the store keeps it in unplaced_items
        try:
            output = self._output(placement.table, placement.fields)
            neutralize = self.config.neutralize_formulas
            if output.schemaless:
                for key in values:
                    name = key if isinstance(key, str) else str(key)
                    if name not in output.known:
                        output.known.add(name)
                        output.fields.append(name)
                if output.rows == 0 and output.header == 0:
                    output.writer.writerow(output.fields)  # provisional: see _complete_header
                    output.header = len(output.fields)
                text = {str(k): v for k, v in values.items()}
                row = [schemaless_cell(text.get(name), neutralize) for name in output.fields]
            else:
                row = [cell(values.get(name), neutralize) for name in output.fields]
            output.writer.writerow(row)
        except OSError as exc:
            self._fail(f"cannot write to {self.root}: {exc.strerror or exc}")
            return item
        output.rows += 1
        self.crawler.stats.inc_value(ROWS_WRITTEN)
        return item

    def _output(self, table: str, specs: tuple[Any, ...] | None) -> _Output:
        if (output := self.outputs.get(table)) is not None:
            return output
        # the final name waits for the run id: the part is named for spider and item
        handle = create_part(
            part_path(self.root / f"{safe_name(self.spider)}-{safe_name(table)}"),
            "x",
            encoding=self.config.encoding,
            errors="replace",  # a lone surrogate or a character the encoding lacks becomes "?"
            newline="",
        )
        fields = [spec.name for spec in specs or ()]
        output = _Output(table, fields, handle, csv.writer(handle), schemaless=specs is None)
        self.outputs[table] = output
        if not output.schemaless:
            output.writer.writerow(fields)
        return output

    def _fail(self, message: str) -> None:
        """Stop writing, drop the part files and close the spider with ``csv_error``."""
        logger.error("CSV: %s", message)
        self.failed = True
        self._discard()
        self._closing = deferred_from_coro(self.crawler.engine.close_spider_async(reason=CSV_ERROR))

    def close_spider(self) -> None:
        if self.failed:
            self._discard()
            return
        run = self.crawler.stats.get_value(RUN_ID)
        run_text = self.time if run is None else str(run)
        paths: list[str] = []
        for output in self.outputs.values():
            try:
                path = self._publish(output, run_text, paths)
            except (OSError, CsvConfigError) as exc:
                self._unpublished(output, exc, run)
                continue
            logger.info("CSV: %s (%d rows)", path, output.rows)
            self.crawler.stats.inc_value(FILES)
            paths.append(str(path))
        self.outputs.clear()
        if paths:
            self.crawler.stats.set_value(PATHS, paths)

    def _unpublished(self, output: _Output, exc: Exception, run: object) -> None:
        """Say where the rows of a file that cannot be published are; the run fails (csv_error)."""
        with contextlib.suppress(OSError):
            output.handle.close()  # the part file stays
        part = Path(output.handle.name)
        kept = f"kept {part}" if part.exists() else f"{part} is gone"
        if self.config.store_path is not None and run is not None:
            where = (
                f"its {output.rows} rows are also in the store {self.config.store_path}"
                f" (scrapy export {output.table} --run {run})"
            )
        else:
            where = f"its {output.rows} rows are in no store"
        logger.error("CSV: cannot publish %s (%s): %s, %s", output.table, kept, exc, where)
        stats = self.crawler.stats
        stats.set_value(CSV_UNPUBLISHED, [*(stats.get_value(CSV_UNPUBLISHED) or []), output.table])

    def _final_path(self, table: str, run: str) -> Path:
        values = {"spider": self.spider, "item": table, "run": run, "time": self.time}
        return resolve_path(self.root, self.config.filename, **values)

    def _publish(self, output: _Output, run: str, taken: list[str]) -> Path:
        path = self._final_path(output.table, run)
        if str(path) in taken:  # CSV_FILENAME without {item} and more than one item class
            path = path.with_name(f"{path.stem}-{safe_name(output.table)}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._complete_header(output)
        publish(output.handle, path)
        return path

    def _complete_header(self, output: _Output) -> None:
        """A schema-less file whose keys grew after its header: copy its rows to a new part
        file under the full header, each row padded to the full width."""
        if len(output.fields) <= output.header:
            return
        old = output.handle
        old.flush()
        encoding = self.config.encoding
        new = create_part(
            part_path(
                Path(old.name).parent / f"{safe_name(self.spider)}-{safe_name(output.table)}"
            ),
            "x",
            encoding=encoding,
            errors="replace",
            newline="",
        )
        try:
            writer = csv.writer(new)
            writer.writerow(output.fields)
            width = len(output.fields)
            with open(old.name, newline="", encoding=encoding, errors="replace") as rows:  # noqa: PTH123
                reader = csv.reader(rows)
                next(reader, None)  # the provisional header
                for row in reader:
                    writer.writerow(row + [""] * (width - len(row)))
        except BaseException:
            discard(new)
            raise
        discard(old)
        output.handle, output.writer, output.header = new, writer, width

    def _discard(self) -> None:
        for output in self.outputs.values():
            discard(output.handle)
        self.outputs.clear()
