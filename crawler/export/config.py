"""``ExportConfig``: the ``EXPORT_*`` settings (and the CSV rules ``scrapy export`` shares)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scrapy.utils.misc import load_object

from crawler import defaults
from crawler.export import ExportUsageError

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

PARQUET_COMPRESSIONS = ("none", "snappy", "gzip", "brotli", "zstd", "lz4")


@dataclass(frozen=True)
class ExportConfig:
    db_path: str
    busy_timeout: float = defaults.SQLITE_BUSY_TIMEOUT
    batch_rows: int = defaults.EXPORT_BATCH_ROWS
    parquet_row_group_rows: int = defaults.EXPORT_PARQUET_ROW_GROUP_ROWS
    parquet_compression: str = defaults.EXPORT_PARQUET_COMPRESSION
    item_classes: tuple[type, ...] = ()
    cursor_inflight_hours: float = defaults.EXPORT_CURSOR_INFLIGHT_HOURS
    csv_neutralize: bool = defaults.CSV_NEUTRALIZE_FORMULAS
    csv_encoding: str = defaults.CSV_ENCODING

    def __post_init__(self) -> None:
        if self.batch_rows < 1 or self.parquet_row_group_rows < 1:
            raise ExportUsageError(
                "EXPORT_BATCH_ROWS and EXPORT_PARQUET_ROW_GROUP_ROWS must be at least 1"
            )
        if self.parquet_compression not in PARQUET_COMPRESSIONS:
            choices = ", ".join(PARQUET_COMPRESSIONS)
            raise ExportUsageError(
                f"EXPORT_PARQUET_COMPRESSION {self.parquet_compression!r}: choose {choices}"
            )

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> ExportConfig:
        names = settings.getlist("EXPORT_ITEM_CLASSES", defaults.EXPORT_ITEM_CLASSES)
        try:
            classes = tuple(load_object(name) for name in names)
        except (ImportError, NameError, ValueError, AttributeError) as exc:
            raise ExportUsageError(f"EXPORT_ITEM_CLASSES: {exc}") from None
        compression = settings.get(
            "EXPORT_PARQUET_COMPRESSION", defaults.EXPORT_PARQUET_COMPRESSION
        )
        return cls(
            db_path=str(settings.get("SQLITE_PATH") or defaults.SQLITE_PATH),
            busy_timeout=settings.getfloat("SQLITE_BUSY_TIMEOUT", defaults.SQLITE_BUSY_TIMEOUT),
            batch_rows=settings.getint("EXPORT_BATCH_ROWS", defaults.EXPORT_BATCH_ROWS),
            parquet_row_group_rows=settings.getint(
                "EXPORT_PARQUET_ROW_GROUP_ROWS", defaults.EXPORT_PARQUET_ROW_GROUP_ROWS
            ),
            parquet_compression=str(compression).strip().lower(),
            item_classes=classes,
            cursor_inflight_hours=settings.getfloat(
                "EXPORT_CURSOR_INFLIGHT_HOURS", defaults.EXPORT_CURSOR_INFLIGHT_HOURS
            ),
            csv_neutralize=settings.getbool(
                "CSV_NEUTRALIZE_FORMULAS", defaults.CSV_NEUTRALIZE_FORMULAS
            ),
            csv_encoding=str(settings.get("CSV_ENCODING") or defaults.CSV_ENCODING),
        )
