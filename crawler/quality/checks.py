"""The checks across runs: this run's figures against the median of the previous runs'.

Pure logic (no store, no Scrapy objects): ``RunFigures.from_stats`` reads what a run looked like
from its stats and field coverage; ``run_checks`` compares one run with the previous successful
runs of the same spider and arguments (``HealthMonitor`` finds them) and returns every result,
passed or not. The checks (``QUALITY_CHECKS``):

* ``items``: items (``HEALTH_ITEM_STATS``) under ``HEALTH_MIN_ITEM_RATIO`` × the median;
* ``coverage``: per item table and field, the share of items with a value under the median share
  minus ``QUALITY_MAX_COVERAGE_DROP`` (absolute), judged only for tables with
  ``QUALITY_MIN_ITEMS`` items in this run and in each previous run counted; plus the absolute
  floors of ``QUALITY_MIN_COVERAGE``, which need no previous run;
* ``errors``: the share of requests that failed above the median share +
  ``QUALITY_MAX_ERROR_RATIO_RISE``, from ``HEALTH_MIN_REQUESTS`` requests;
* ``statuses``: the share of each status class (2xx, 3xx, 4xx, 5xx; a 304 counts as 2xx: a page
  kept current) moved more than ``QUALITY_MAX_STATUS_SHIFT`` from its median share, from
  ``HEALTH_MIN_REQUESTS`` responses;
* ``rejects``: the share of items rejected above the median share +
  ``QUALITY_MAX_REJECT_RATIO_RISE``, from ``QUALITY_MIN_ITEMS`` items.

Each median is over the latest ``QUALITY_BASELINE_RUNS`` previous runs with enough data for the
check (``HealthMonitor`` looks back over at most ``LOOKBACK`` × that many). A run without
previous runs passes every comparison (only the floors apply).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from crawler import defaults
from crawler import stats as keys

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from scrapy.settings import BaseSettings

CHECKS = ("items", "coverage", "errors", "statuses", "rejects")
LOOKBACK = 10  # previous runs read: this × QUALITY_BASELINE_RUNS, for runs with enough data
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
_STATUS_PREFIX = "downloader/response_status_count/"


@dataclass(frozen=True)
class QualityPolicy:
    """The ``QUALITY_*`` settings (and the ``HEALTH_*`` ones the checks share)."""

    checks: frozenset[str] = frozenset(CHECKS)
    baseline_runs: int = 5
    min_item_ratio: float = 0.5
    max_coverage_drop: float = 0.2
    min_items: int = 20
    max_error_ratio_rise: float = 0.1
    max_status_shift: float = 0.2
    max_reject_ratio_rise: float = 0.1
    min_requests: int = 10
    min_coverage: tuple[tuple[str, float], ...] = ()
    ignore_fields: frozenset[str] = frozenset()
    item_stats: tuple[str, ...] = ("item_scraped_count",)

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> QualityPolicy:
        """``ValueError`` with a one-line message when a setting is bad."""
        checks = [str(c).strip() for c in _list(settings, "QUALITY_CHECKS")]
        if unknown := [c for c in checks if c not in CHECKS]:
            raise ValueError(
                f"QUALITY_CHECKS: unknown check {unknown[0]!r} (known: {', '.join(CHECKS)})"
            )
        health = keys.HealthPolicy.from_settings(settings)
        return cls(
            checks=frozenset(checks),
            baseline_runs=int(_number(settings, "QUALITY_BASELINE_RUNS", 1, 1000)),
            min_item_ratio=health.min_item_ratio,
            max_coverage_drop=_number(settings, "QUALITY_MAX_COVERAGE_DROP", 0, 1),
            min_items=int(_number(settings, "QUALITY_MIN_ITEMS", 1, None)),
            max_error_ratio_rise=_number(settings, "QUALITY_MAX_ERROR_RATIO_RISE", 0, 1),
            max_status_shift=_number(settings, "QUALITY_MAX_STATUS_SHIFT", 0, 1),
            max_reject_ratio_rise=_number(settings, "QUALITY_MAX_REJECT_RATIO_RISE", 0, 1),
            min_requests=health.min_requests,
            min_coverage=_floors(settings),
            ignore_fields=frozenset(str(f) for f in _list(settings, "QUALITY_IGNORE_FIELDS")),
            item_stats=health.item_stats,
        )

    def ignored(self, table: str, name: str) -> bool:
        return name in self.ignore_fields or f"{table}.{name}" in self.ignore_fields


def _raw(settings: BaseSettings, name: str) -> Any:
    raw = settings.get(name)
    return getattr(defaults, name) if raw is None else raw  # settings without the add-on


def _list(settings: BaseSettings, name: str) -> list[Any]:
    raw = _raw(settings, name)
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                raw = json.loads(text)
            except ValueError:
                raise ValueError(f"{name} must be a list, not {raw!r}") from None
        else:
            return [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(raw, list | tuple | set | frozenset):
        raise ValueError(f"{name} must be a list, not {raw!r}")
    return list(raw)


_number = keys.number_setting


def _floors(settings: BaseSettings) -> tuple[tuple[str, float], ...]:
    raw = _raw(settings, "QUALITY_MIN_COVERAGE")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raw = None
    if not isinstance(raw, dict):
        raise ValueError(f'QUALITY_MIN_COVERAGE must be a dict like {{"price": 0.9}}, not {raw!r}')
    floors = []
    for name, share in raw.items():
        try:
            value = float(share)
        except (TypeError, ValueError):
            value = float("nan")
        if not 0 <= value <= 1:
            raise ValueError(f"QUALITY_MIN_COVERAGE[{name!r}] must be a share from 0 to 1")
        floors.append((str(name), value))
    return tuple(floors)


@dataclass(frozen=True)
class RunFigures:
    """What the checks compare, of one run."""

    items: int = 0
    coverage: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    requests: int = 0
    errors: int = 0
    statuses: Mapping[str, int] = field(default_factory=dict)
    rejected: int = 0
    stored: int = 0

    @classmethod
    def from_stats(
        cls,
        stats: Mapping[str, Any],
        coverage: Mapping[str, Mapping[str, Any]] | None,
        item_stats: Sequence[str] = ("item_scraped_count",),
    ) -> RunFigures:
        """A run's figures from its stats (live, or a ``runs.stats`` JSON) and field coverage
        (``{table: {"items": n, "fields": {field: filled}}}``; None: the ``COVERAGE`` stat)."""
        requests, errors = keys.requests_and_errors(stats)  # a recrawl's 304s count as requests
        found = coverage if coverage is not None else stats.get(keys.COVERAGE)
        return cls(
            items=sum(int(stats.get(key) or 0) for key in item_stats),
            coverage=found if isinstance(found, dict) else {},
            requests=requests,
            errors=errors,
            statuses=status_classes(stats),
            rejected=int(stats.get(keys.REJECTED) or 0),
            stored=int(stats.get("item_scraped_count") or 0),
        )


def status_classes(stats: Mapping[str, Any]) -> dict[str, int]:
    """Responses by class (``2xx``…``5xx``) from ``downloader/response_status_count/*``."""
    classes: dict[str, int] = {}
    for key, value in stats.items():
        if not key.startswith(_STATUS_PREFIX):
            continue
        code = key[len(_STATUS_PREFIX) :]
        if code == "304":
            code = "200"  # not modified: a page kept current, not a redirect
        name = f"{code[:1]}xx"
        if name in STATUS_CLASSES:
            classes[name] = classes.get(name, 0) + int(value or 0)
    return classes


@dataclass(frozen=True)
class CheckResult:
    check: str
    subject: str
    value: float
    baseline: float | None  # the median of the previous runs (None: a floor)
    runs: int  # previous runs in the median
    limit: str
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _points(share: float) -> str:
    return f"{share * 100:g} points"


def run_checks(
    current: RunFigures,
    previous: Sequence[RunFigures],
    policy: QualityPolicy,
    *,
    whole_run: bool = True,
) -> list[CheckResult]:
    """Every check's result for ``current`` against ``previous`` (newest first). Each check
    takes the median of the latest ``QUALITY_BASELINE_RUNS`` of them that have enough data for
    it (a recrawl answered by 304s has too few items of a table to count for its coverage).
    ``whole_run`` False: the run holds only part of its items (a resumed crawl, one worker of
    several): items and coverage are not judged."""
    results: list[CheckResult] = []
    on = policy.checks
    if whole_run and "items" in on and policy.min_item_ratio:
        results += _items(current, previous, policy)
    if whole_run and "coverage" in on:
        results += _coverage(current, previous, policy)
    if "errors" in on:
        results += _errors(current, previous, policy)
    if "statuses" in on:
        results += _statuses(current, previous, policy)
    if "rejects" in on:
        results += _rejects(current, previous, policy)
    return results


def _items(
    current: RunFigures, previous: Sequence[RunFigures], policy: QualityPolicy
) -> list[CheckResult]:
    counts = [run.items for run in previous[: policy.baseline_runs]]
    if not counts:
        return []
    median = float(statistics.median(counts))
    if not median:
        return []
    limit = policy.min_item_ratio * median
    return [
        CheckResult(
            "items", "items", float(current.items), median, len(counts), f">= {limit:g}",
            current.items >= limit,
            f"{current.items} items vs {median:g} median of {_runs(len(counts))}"
            f" (HEALTH_MIN_ITEM_RATIO is {policy.min_item_ratio:.0%})",
        )
    ]  # fmt: skip


def share_of(table: Mapping[str, Any], name: str) -> float | None:
    """The share of a table's items with a value for ``name``; None when unknown (the field
    is not tracked and the table has untracked fields)."""
    items = int(table.get("items") or 0)
    fields = table.get("fields") or {}
    if not items:
        return None
    if name in fields:
        return int(fields[name] or 0) / items
    return None if keys.COVERAGE_OTHER in fields else 0.0


def _coverage(
    current: RunFigures, previous: Sequence[RunFigures], policy: QualityPolicy
) -> list[CheckResult]:
    results: list[CheckResult] = []
    several = len(current.coverage) > 1
    for table, figures in sorted(current.coverage.items()):
        if int(figures.get("items") or 0) < policy.min_items:
            continue
        earlier = [
            run.coverage[table]
            for run in previous
            if int((run.coverage.get(table) or {}).get("items") or 0) >= policy.min_items
        ][: policy.baseline_runs]
        names = dict.fromkeys(name for run in earlier for name in run.get("fields") or {})
        for name in names:
            if name == keys.COVERAGE_OTHER or policy.ignored(table, name):
                continue
            value = share_of(figures, name)
            shares = [s for s in (share_of(run, name) for run in earlier) if s is not None]
            if value is None or not shares:
                continue
            median = float(statistics.median(shares))
            label = f"{table}.{name}" if several else name
            limit = median - policy.max_coverage_drop
            results.append(
                CheckResult(
                    "coverage", f"{table}.{name}", value, median, len(shares),
                    f">= {max(limit, 0):.0%}", value >= limit - 1e-9,
                    f"{label} coverage {value:.0%} vs {median:.0%} median of"
                    f" {_runs(len(shares))} (QUALITY_MAX_COVERAGE_DROP is"
                    f" {_points(policy.max_coverage_drop)})",
                )
            )  # fmt: skip
    return results + _floors_met(current, policy)


def _floor_targets(coverage: Mapping[str, Mapping[str, Any]], key: str) -> list[tuple[str, str]]:
    table, _, name = key.partition(".")
    if name and table in coverage:
        return [(table, name)]
    tracking = [t for t, figures in coverage.items() if key in (figures.get("fields") or {})]
    return [(t, key) for t in (tracking or sorted(coverage))]


def _floors_met(current: RunFigures, policy: QualityPolicy) -> list[CheckResult]:
    results: list[CheckResult] = []
    several = len(current.coverage) > 1
    for key, floor in policy.min_coverage:
        for table, name in _floor_targets(current.coverage, key):
            value = share_of(current.coverage[table], name)
            if value is None:
                continue
            label = f"{table}.{name}" if several else name
            results.append(
                CheckResult(
                    "coverage", f"{table}.{name}", value, None, 0, f">= {floor:.0%}",
                    value >= floor - 1e-9,
                    f"{label} coverage {value:.0%} vs its floor of {floor:.0%}"
                    " (QUALITY_MIN_COVERAGE)",
                )
            )  # fmt: skip
    return results


def _ratio_check(
    check: str,
    what: str,
    value: float,
    shares: list[float],
    rise: float,
    setting: str,
) -> list[CheckResult]:
    if not shares:
        return []
    median = float(statistics.median(shares))
    return [
        CheckResult(
            check, what, value, median, len(shares), f"<= {min(median + rise, 1):.0%}",
            value <= median + rise + 1e-9,
            f"{what} {value:.0%} vs {median:.0%} median of {_runs(len(shares))}"
            f" ({setting} is {_points(rise)})",
        )
    ]  # fmt: skip


def _errors(
    current: RunFigures, previous: Sequence[RunFigures], policy: QualityPolicy
) -> list[CheckResult]:
    least = max(policy.min_requests, 1)
    if current.requests < least:
        return []
    shares = [run.errors / run.requests for run in previous if run.requests >= least]
    shares = shares[: policy.baseline_runs]
    value = current.errors / current.requests
    return _ratio_check(
        "errors", "error ratio", value, shares, policy.max_error_ratio_rise,
        "QUALITY_MAX_ERROR_RATIO_RISE",
    )  # fmt: skip


def _rejects(
    current: RunFigures, previous: Sequence[RunFigures], policy: QualityPolicy
) -> list[CheckResult]:
    def seen(run: RunFigures) -> int:
        return run.rejected + run.stored

    if seen(current) < policy.min_items:
        return []
    shares = [run.rejected / seen(run) for run in previous if seen(run) >= policy.min_items]
    shares = shares[: policy.baseline_runs]
    value = current.rejected / seen(current)
    return _ratio_check(
        "rejects", "reject ratio", value, shares, policy.max_reject_ratio_rise,
        "QUALITY_MAX_REJECT_RATIO_RISE",
    )  # fmt: skip


def _statuses(
    current: RunFigures, previous: Sequence[RunFigures], policy: QualityPolicy
) -> list[CheckResult]:
    least = max(policy.min_requests, 1)
    total = sum(current.statuses.values())
    earlier = [run.statuses for run in previous if sum(run.statuses.values()) >= least]
    earlier = earlier[: policy.baseline_runs]
    if total < least or not earlier:
        return []
    results = []
    seen: Iterable[str] = {name for run in (current.statuses, *earlier) for name in run}
    for name in (c for c in STATUS_CLASSES if c in seen):
        value = current.statuses.get(name, 0) / total
        shares = [run.get(name, 0) / sum(run.values()) for run in earlier]
        median = float(statistics.median(shares))
        shift = policy.max_status_shift
        results.append(
            CheckResult(
                "statuses", name, value, median, len(shares),
                f"{max(median - shift, 0):.0%} to {min(median + shift, 1):.0%}",
                abs(value - median) <= shift + 1e-9,
                f"{name} share {value:.0%} vs {median:.0%} median of {_runs(len(shares))}"
                f" (QUALITY_MAX_STATUS_SHIFT is {_points(shift)})",
            )
        )  # fmt: skip
    return results


def breaches(results: Iterable[CheckResult]) -> list[str]:
    """The failure lines of the checks that failed: ``quality: <message>``."""
    return [f"quality: {result.message}" for result in results if not result.passed]
