"""The run counters every report shows, derived from Scrapy's stats in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Stats keys our own components write.
# requests that ended in an error (after retries) or with HTTP >= 400
FETCH_ERRORS = "crawl/fetch_errors"
REJECTED = "validate/rejected"  # items the validate pipeline refused (also in the rejects table)
DUPLICATES = "dedupe/dropped"  # items dropped as a repeat of a natural key in this run
RUN_ID = "run/id"  # id of this run in the store's runs table


@dataclass(frozen=True)
class RunCounts:
    pages: int
    items: int
    rejects: int
    duplicates: int
    errors: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def run_counts(stats: dict[str, Any]) -> RunCounts:
    """Pages fetched, items kept, items rejected, duplicates dropped, and errors of a run."""
    return RunCounts(
        pages=int(stats.get("response_received_count", 0)),
        items=int(stats.get("item_scraped_count", 0)),
        rejects=int(stats.get(REJECTED, 0)),
        duplicates=int(stats.get(DUPLICATES, 0)),
        errors=int(stats.get(FETCH_ERRORS, 0)) + int(stats.get("spider_exceptions/count", 0)),
    )


# Finish reasons that mean the run did not do its job: `scrapy crawl` exits 1 for them.
FAILED_REASONS = frozenset({"store_error", "csv_error", "shutdown", "cancelled"})


def exit_status(reason: str) -> int:
    """The exit status of a run that ended with ``reason``: 0 for success, 1 for failure."""
    return 1 if reason in FAILED_REASONS else 0
