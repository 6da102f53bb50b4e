"""The run counters every report shows, and the exit-status policy, derived from stats in one place.

The policy (``HealthPolicy``, ``judge``) decides whether a run worked; ``HealthMonitor``
(``crawler/extensions/health.py``) applies it when the spider closes and records the verdict in
the stats, where the run recorder and ``scrapy crawl`` read it (``recorded_verdict``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from crawler import defaults

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrapy.settings import BaseSettings

# Stats keys our own components write.
# requests that ended in an error (after retries) or with HTTP >= 400
FETCH_ERRORS = "crawl/fetch_errors"
# downloads that failed without a response (after retries), for any spider (FetchFailureMiddleware)
DOWNLOAD_FAILURES = "crawl/download_failures"
REJECTED = "validate/rejected"  # items the validate pipeline refused (also in the rejects table)
DUPLICATES = "dedupe/dropped"  # items dropped as a repeat of a natural key in this run
RUN_ID = "run/id"  # id of this run in the store's runs table
FRONTIER_RESUMED = "frontier/resumed"  # 1: this run resumed an unfinished crawl
FRONTIER_JOB_ID = "frontier/job_id"  # the frontier job this crawl works on (set by the scheduler)
RESPONSES = "health/responses"  # final responses to the spider's requests (robots.txt excluded)
ERROR_RESPONSES = "health/error_responses"  # of those, HTTP >= 400
HEALTH_STATUS = "health/exit_status"  # the verdict: 0 or 1
HEALTH_FAILURE = "health/failure"  # why the run failed, one line per kind joined by "; "
# hosts whose robots.txt was asked for, and of those, the ones unreachable when last asked
ROBOTS_HOSTS = "robots/hosts"
ROBOTS_HOSTS_UNREACHABLE = "robots/hosts_unreachable"
ROBOTS_UNREACHABLE_REASON = "robots/unreachable_reason"  # "host: why" of the latest unreachable one
CSV_UNPUBLISHED = "csv/unpublished"  # item tables whose CSV file could not be renamed into place
# incremental recrawls (crawler.middlewares.conditional)
NOT_MODIFIED = "incremental/not_modified"
UNCHANGED = "incremental/unchanged"
CHANGED = "incremental/changed"
NEW = "incremental/new"
SKIPPED_RECENT = "incremental/skipped_recent"
ROW_MISSING = "incremental/row_missing"  # known URLs fetched in full: their item row is gone
ROWS_TOUCHED = "incremental/rows_touched"  # item rows marked seen by a 304
UNSAVED = "incremental/unsaved_states"  # fetch states the store could not take at close
# What a run looked like (issue "See a crawl"): read by the checks across runs and the report.
# Field coverage of the items kept, per item table (crawler.extensions.coverage), published at
# close: {table: {"items": n, "fields": {field: filled}}}; fields past COVERAGE_MAX_FIELDS summed
# as COVERAGE_OTHER.
COVERAGE = "coverage/tables"
COVERAGE_OTHER = "(other fields)"
QUALITY_CHECKS = "quality/checks"  # the checks across runs: a list of result dicts
QUALITY_BREACHES = "quality/breaches"  # how many of them failed
# the run row's finish reason of a crawl that finished but failed a check across runs
QUALITY_FAILED = "quality_failed"
# Response figures (crawler.extensions.sampler): download latency histogram {"<upper ms>": n,
# "inf": n}; per host {host: {"pages": n, "errors": n, "bytes": n}} (capped, rest as "(other)");
# responses by how they were fetched {"http": n, "browser": n}.
LATENCY_MS = "metrics/latency_ms"
HOSTS = "metrics/hosts"
FETCH_KINDS = "metrics/fetch_kinds"
# Requests the crawl knows it will make: a URL list's seeds, a sitemap's URLs, a resumed
# frontier's done + queued. Set (or increased) by whoever knows; the progress ETA reads it.
PROGRESS_TOTAL = "progress/total"
# 1: PROGRESS_TOTAL is the whole crawl (an estimate until start() is read to its end), so the
# progress display shows a bar and an ETA; unset for a crawl that follows links (no ETA).
PROGRESS_TOTAL_KNOWN = "progress/total_known"
PROGRESS_DONE_BEFORE = "progress/done_before"  # requests a resumed frontier finished before
# requests of our spiders that ended without a response (DNS, timeout, refused, robots.txt,
# private target): with the responses and the 304s/min_age skips, the requests done
PROGRESS_ENDED = "progress/ended_without_response"
FAILED_PAGES = "failures/recorded"  # failed_pages rows of the run (crawler.extensions.snapshots)
SNAPSHOTS_SAVED = "snapshots/saved"  # snapshot files kept for failed pages and rejected items
SNAPSHOTS_SKIPPED = "snapshots/skipped"  # not kept: SNAPSHOT_MAX_COUNT / _MAX_BYTES reached
# screenshots the browser took of rendered pages that answered >= 400 (SNAPSHOT_SCREENSHOTS)
SCREENSHOTS_TAKEN = "render/screenshots"
REPORT_PATH = "report/path"  # the HTML report written at close (REPORT_AT_CLOSE)
# requests a recrawl answered without a fetch (ConditionalRequestMiddleware): kept current
KEPT_CURRENT = (NOT_MODIFIED, SKIPPED_RECENT)


@dataclass(frozen=True)
class RunCounts:
    pages: int
    items: int
    rejects: int
    duplicates: int
    errors: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def run_counts(stats: Mapping[str, Any]) -> RunCounts:
    """Pages fetched, items kept, items rejected, duplicates dropped, and errors of a run."""
    return RunCounts(
        pages=int(stats.get("response_received_count", 0)),
        items=int(stats.get("item_scraped_count", 0)),
        rejects=int(stats.get(REJECTED, 0)),
        duplicates=int(stats.get(DUPLICATES, 0)),
        errors=fetch_errors(stats) + int(stats.get("spider_exceptions/count", 0)),
    )


def fetch_errors(stats: Mapping[str, Any]) -> int:
    """Requests that ended in an error: as our spiders count them (``FETCH_ERRORS``, in their
    errback), or, for a spider that counts none (a plain ``scrapy.Spider``), as the crawl saw them:
    responses with HTTP >= 400 and downloads that failed without a response."""
    counted = int(stats.get(FETCH_ERRORS, 0))
    seen = int(stats.get(ERROR_RESPONSES, 0)) + int(stats.get(DOWNLOAD_FAILURES, 0))
    return max(counted, seen)


# Finish reasons that mean failure even when the health monitor is off (HEALTH_ENABLED=False).
FAILED_REASONS = frozenset({"store_error", "csv_error", "shutdown", "cancelled"})


def exit_status(reason: str) -> int:
    """The exit status from the finish reason alone: 1 for ``FAILED_REASONS``, else 0."""
    return 1 if reason in FAILED_REASONS else 0


@dataclass(frozen=True)
class Verdict:
    exit_status: int
    failures: tuple[str, ...] = ()

    @property
    def failure(self) -> str | None:
        return "; ".join(self.failures) or None


def number_setting(settings: BaseSettings, name: str, low: float, high: float | None) -> float:
    """The number setting ``name`` (its project default when unset), between ``low`` and ``high``;
    ``ValueError`` with a one-line message when it is not."""
    raw = settings.get(name)
    if raw is None:  # settings built without the project add-on (tests, scripts)
        raw = getattr(defaults, name)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not (value >= low and (high is None or value <= high)):
        limits = f"between {low:g} and {high:g}" if high is not None else f"{low:g} or more"
        raise ValueError(f"{name} must be a number {limits}, not {raw!r}")
    return value


@dataclass(frozen=True)
class HealthPolicy:
    ok_reasons: frozenset[str] = frozenset({"finished"})
    max_error_ratio: float = 0.5
    min_requests: int = 10
    min_item_ratio: float = 0.5
    item_stats: tuple[str, ...] = ("item_scraped_count",)
    max_reject_ratio: float = 0.5

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> HealthPolicy:
        """The ``HEALTH_*`` settings; ``ValueError`` with a one-line message when one is bad."""
        return cls(
            ok_reasons=frozenset(settings.getlist("HEALTH_OK_REASONS")),
            max_error_ratio=number_setting(settings, "HEALTH_MAX_ERROR_RATIO", 0, 1),
            min_requests=int(number_setting(settings, "HEALTH_MIN_REQUESTS", 0, None)),
            min_item_ratio=number_setting(settings, "HEALTH_MIN_ITEM_RATIO", 0, 1),
            item_stats=tuple(settings.getlist("HEALTH_ITEM_STATS")) or ("item_scraped_count",),
            max_reject_ratio=number_setting(settings, "HEALTH_MAX_REJECT_RATIO", 0, 1),
        )

    def items(self, stats: Mapping[str, Any]) -> int:
        """The run's item count: the sum of the ``HEALTH_ITEM_STATS`` stats."""
        return sum(int(stats.get(key) or 0) for key in self.item_stats)


def requests_and_errors(stats: Mapping[str, Any]) -> tuple[int, int]:
    """Requests that ended (a response, a 304 that kept a page current, or an error without a
    response) and how many ended in error. Without the 304s, a recrawl's few full fetches would
    make a site's usual 1% of 404s look like 20%."""
    errors = run_counts(stats).errors
    responses = int(stats.get(RESPONSES, 0)) + int(stats.get(NOT_MODIFIED, 0))
    without_response = max(0, errors - int(stats.get(ERROR_RESPONSES, 0)))
    return responses + without_response, errors


def judge(
    reason: str,
    stats: Mapping[str, Any],
    policy: HealthPolicy,
    *,
    share: bool = False,
) -> Verdict:
    """Every way the run failed: finish reason, error ratio, nothing fetched, rejects, CSV (the
    items against the previous runs are a check across runs: ``crawler.quality.checks``).

    ``share``: the stats are one worker's share of a ``WORKERS`` run; a worker that fetched
    nothing (the others took every request) is no failure: the run as a whole is judged so."""
    failures: list[str] = []
    if reason not in policy.ok_reasons:
        accepted = ", ".join(sorted(policy.ok_reasons))
        failures.append(
            f"reason: the run ended with {reason!r}, not in HEALTH_OK_REASONS ({accepted})"
        )
    requests, errors = requests_and_errors(stats)
    applies = requests >= max(policy.min_requests, 1) or (requests > 0 and errors >= requests)
    if applies and errors > policy.max_error_ratio * requests:
        failures.append(
            f"errors: {errors} of {requests} requests failed ({errors / requests:.0%},"
            f" HEALTH_MAX_ERROR_RATIO is {policy.max_error_ratio:.0%})"
        )
    items = policy.items(stats)
    # else that failure says why
    if dead := None if failures or share else fetched_nothing(stats, items):
        failures.append(dead)  # the checks across runs are skipped for it: this says why
    if rejected := too_many_rejects(stats, policy):
        failures.append(rejected)
    if csv_failure := unpublished_csv(stats):
        failures.append(csv_failure)
    return Verdict(1 if failures else 0, tuple(failures))


def too_many_rejects(stats: Mapping[str, Any], policy: HealthPolicy) -> str | None:
    """Why the run's rejects fail it: it stored no item but rejected some, or it rejected more
    than ``HEALTH_MAX_REJECT_RATIO`` of the items that reached validation."""
    rejected = int(stats.get(REJECTED, 0))
    stored = int(stats.get("item_scraped_count", 0))
    if not rejected:
        return None
    seen = rejected + stored
    if not stored:
        return f"rejects: all {rejected} items were rejected, none stored (see the rejects table)"
    if rejected > policy.max_reject_ratio * seen:
        return (
            f"rejects: {rejected} of {seen} items rejected ({rejected / seen:.0%},"
            f" HEALTH_MAX_REJECT_RATIO is {policy.max_reject_ratio:.0%})"
        )
    return None


def fetched_nothing(stats: Mapping[str, Any], items: int) -> str | None:
    """Why a run that made requests got no page, no 304, no ``min_age`` skip and no item.

    A recrawl whose pages all answered 304 or were skipped as fetched recently kept its rows
    current (``KEPT_CURRENT``): it fetched what it had to. A run that asked for nothing at all
    is not judged here.
    """
    evidence = ("scheduler/enqueued", "downloader/request_count", ROBOTS_HOSTS)
    requests = sum(int(stats.get(key, 0)) for key in evidence)
    kept = sum(int(stats.get(key, 0)) for key in KEPT_CURRENT)
    if not requests or int(stats.get(RESPONSES, 0)) or kept or items:
        return None
    hosts = int(stats.get(ROBOTS_HOSTS, 0))
    if hosts and int(stats.get(ROBOTS_HOSTS_UNREACHABLE, 0)) >= hosts:
        latest = str(stats.get(ROBOTS_UNREACHABLE_REASON, "")).replace("; ", ", ")
        return (
            f"robots_unreachable: the robots.txt of every host ({hosts}) was unreachable"
            f" ({latest}), so every page was disallowed (RFC 9309) and none was fetched"
        )
    causes = [
        f"{int(stats[key])} {what}"
        for key, what in (
            ("robotstxt/forbidden", "forbidden by robots.txt"),
            ("robots/unreachable_forbidden", "refused as their robots.txt was unreachable"),
            ("safety/blocked_private", "blocked as private targets"),
            ("safety/blocked_scheme", "blocked for their scheme"),
            ("downloader/exception_count", "download errors"),
        )
        if stats.get(key)
    ]
    return "no_pages_fetched: no page was fetched, no 304, no min_age skip and no item" + (
        f" ({', '.join(causes)})" if causes else ""
    )


def unpublished_csv(stats: Mapping[str, Any]) -> str | None:
    """The failure of a run whose CSV files (some of them) could not be published at close."""
    tables = stats.get(CSV_UNPUBLISHED)
    if not tables:
        return None
    files = "file" if len(tables) == 1 else "files"
    names = ", ".join(tables)
    return f"csv_error: {len(tables)} CSV {files} not published ({names}), see the CSV: line"


def recorded_verdict(stats: Mapping[str, Any], reason: str) -> Verdict:
    """The verdict the health monitor recorded in ``stats``; else from the finish reason alone."""
    if stats.get(HEALTH_STATUS) is None:
        failures = [f"reason: the run ended with {reason!r}"] if exit_status(reason) else []
        if csv_failure := unpublished_csv(stats):  # csv_error, reached after the finish reason
            failures.append(csv_failure)
        return Verdict(1 if failures else 0, tuple(failures))
    failure = stats.get(HEALTH_FAILURE)
    return Verdict(int(stats[HEALTH_STATUS]), tuple(str(failure).split("; ")) if failure else ())
