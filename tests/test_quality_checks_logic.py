"""The checks across runs on their own (crawler.quality.checks): figures in, results out."""

from __future__ import annotations

from typing import Any

import pytest
from scrapy.settings import Settings

from crawler import defaults
from crawler.quality.checks import QualityPolicy, RunFigures, breaches, run_checks, status_classes
from crawler.stats import COVERAGE_OTHER

pytestmark = pytest.mark.timeout(10)


def products(items: int, **filled: int) -> dict[str, Any]:
    return {"products": {"items": items, "fields": filled}}


def run(items: int = 100, **filled: int) -> RunFigures:
    return RunFigures(items=items, coverage=products(items, **filled))


def failed(results: list[Any]) -> list[str]:
    return breaches(results)


def test_a_field_gone_empty_fails_with_its_figures() -> None:
    previous = [run(100, price=99, sku=100) for _ in range(5)]
    results = run_checks(run(100, price=12, sku=100), previous, QualityPolicy())
    assert failed(results) == [
        "quality: price coverage 12% vs 99% median of 5 runs (QUALITY_MAX_COVERAGE_DROP is"
        " 20 points)"
    ]
    price = next(r for r in results if r.subject == "products.price")
    assert (price.check, price.value, price.baseline, price.runs, price.passed) == (
        "coverage", 0.12, 0.99, 5, False,
    )  # fmt: skip
    # every result is kept, passed ones too
    assert {(r.check, r.subject, r.passed) for r in results} == {
        ("items", "items", True),
        ("coverage", "products.price", False),
        ("coverage", "products.sku", True),
    }


def test_the_median_ignores_one_odd_run() -> None:
    previous = [run(100, price=p) for p in (95, 96, 10, 97, 98)]
    assert failed(run_checks(run(100, price=80), previous, QualityPolicy())) == []
    assert failed(run_checks(run(100, price=70), previous, QualityPolicy())) != []


def test_no_previous_run_passes_and_floors_apply_anyway() -> None:
    assert run_checks(run(100, price=0), [], QualityPolicy()) == []
    floors = QualityPolicy(min_coverage=(("price", 0.9), ("products.sku", 0.5)))
    results = run_checks(run(100, price=50, sku=60), [], floors)
    assert failed(results) == [
        "quality: price coverage 50% vs its floor of 90% (QUALITY_MIN_COVERAGE)"
    ]
    assert [r.subject for r in results] == ["products.price", "products.sku"]


def test_small_tables_are_not_judged_on_coverage() -> None:
    previous = [run(100, price=100)] * 3
    (result,) = run_checks(run(19, price=0), previous, QualityPolicy(min_items=10))[1:]
    assert (result.subject, result.passed) == ("products.price", False)
    few = QualityPolicy(checks=frozenset({"coverage"}), min_items=20)
    assert run_checks(run(19, price=0), previous, few) == []
    # previous runs with too few items of the table (a recrawl of 304s) are not in the median
    assert run_checks(run(100, price=0), [run(5, price=5)] * 3, few) == []


def test_ignored_fields_and_disabled_checks() -> None:
    previous = [run(100, price=100, name=100)] * 2
    ignored = QualityPolicy(ignore_fields=frozenset({"products.price", "name"}))
    assert failed(run_checks(run(100, price=0, name=0), previous, ignored)) == []
    off = QualityPolicy(checks=frozenset({"items"}))
    assert failed(run_checks(run(100, price=0), previous, off)) == []


def test_a_field_missing_from_dict_items_counts_as_empty_unless_untracked() -> None:
    previous = [run(100, title=100)] * 2
    assert failed(run_checks(run(100, other=100), previous, QualityPolicy()))
    capped = RunFigures(items=100, coverage=products(100, other=1, **{COVERAGE_OTHER: 300}))
    assert failed(run_checks(capped, previous, QualityPolicy())) == []


def test_items_against_the_median() -> None:
    previous = [RunFigures(items=n) for n in (100, 90, 10)]
    assert failed(run_checks(RunFigures(items=40), previous, QualityPolicy())) == [
        "quality: 40 items vs 90 median of 3 runs (HEALTH_MIN_ITEM_RATIO is 50%)"
    ]
    assert failed(run_checks(RunFigures(items=45), previous, QualityPolicy())) == []
    # a resumed run or one worker of several: only part of the items, not compared
    assert run_checks(RunFigures(items=1), previous, QualityPolicy(), whole_run=False) == []


def test_error_reject_and_status_ratios() -> None:
    previous = [
        RunFigures(requests=100, errors=5, rejected=2, stored=98, statuses={"2xx": 95, "4xx": 5})
    ] * 3
    worse = RunFigures(
        requests=100, errors=20, rejected=15, stored=85, statuses={"2xx": 70, "4xx": 30}
    )
    assert failed(run_checks(worse, previous, QualityPolicy())) == [
        "quality: error ratio 20% vs 5% median of 3 runs (QUALITY_MAX_ERROR_RATIO_RISE is"
        " 10 points)",
        "quality: 2xx share 70% vs 95% median of 3 runs (QUALITY_MAX_STATUS_SHIFT is 20 points)",
        "quality: 4xx share 30% vs 5% median of 3 runs (QUALITY_MAX_STATUS_SHIFT is 20 points)",
        "quality: reject ratio 15% vs 2% median of 3 runs (QUALITY_MAX_REJECT_RATIO_RISE is"
        " 10 points)",
    ]
    same = RunFigures(
        requests=100, errors=10, rejected=10, stored=90, statuses={"2xx": 90, "4xx": 10}
    )
    assert failed(run_checks(same, previous, QualityPolicy())) == []
    # too few requests to judge a share
    tiny = RunFigures(requests=5, errors=5, statuses={"5xx": 5})
    assert [r for r in run_checks(tiny, previous, QualityPolicy()) if r.check != "rejects"] == []


def test_status_classes_count_304_as_a_page_kept_current() -> None:
    stats = {
        "downloader/response_status_count/200": 5,
        "downloader/response_status_count/304": 90,
        "downloader/response_status_count/301": 2,
        "downloader/response_status_count/404": 3,
        "other": 1,
    }
    assert status_classes(stats) == {"2xx": 95, "3xx": 2, "4xx": 3}


def test_a_recrawls_304s_count_as_requests_that_worked() -> None:
    """A full crawl with 1% of 404s, then a recrawl of the same site: 95 pages answer 304, 4 are
    fetched in full, the same 1 page is a 404. Its error ratio is 1%, not 1 in 5."""
    full = {"health/responses": 100, "health/error_responses": 1, "crawl/fetch_errors": 1}
    recrawl = {
        "health/responses": 5, "health/error_responses": 1, "crawl/fetch_errors": 1,
        "incremental/not_modified": 95,
    }  # fmt: skip
    assert RunFigures.from_stats(recrawl, {}).requests == 100
    previous = [RunFigures.from_stats(full, {})] * 3
    assert failed(run_checks(RunFigures.from_stats(recrawl, {}), previous, QualityPolicy())) == []


def test_policy_from_settings() -> None:
    settings = Settings(defaults.settings_defaults())
    policy = QualityPolicy.from_settings(settings)
    assert policy.checks == {"items", "coverage", "errors", "statuses", "rejects"}
    assert (policy.baseline_runs, policy.max_coverage_drop, policy.min_items) == (5, 0.2, 20)
    settings.set("QUALITY_MIN_COVERAGE", '{"price": 0.9}')
    settings.set("QUALITY_CHECKS", "coverage,items")
    policy = QualityPolicy.from_settings(settings)
    assert (policy.min_coverage, policy.checks) == ((("price", 0.9),), {"coverage", "items"})
    for name, value, message in [
        ("QUALITY_CHECKS", ["coverage", "speed"], "QUALITY_CHECKS: unknown check 'speed'"),
        ("QUALITY_MAX_COVERAGE_DROP", "2", "QUALITY_MAX_COVERAGE_DROP must be a number between"),
        ("QUALITY_MIN_COVERAGE", {"price": 9}, "QUALITY_MIN_COVERAGE['price'] must be a share"),
    ]:
        bad = Settings(defaults.settings_defaults())
        bad.set(name, value)
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
            QualityPolicy.from_settings(bad)


def test_each_median_takes_the_latest_runs_with_enough_data() -> None:
    # newest first: two recrawls of 304s (too few items), then five full runs and an old one
    previous = [run(3, price=3)] * 2 + [run(100, price=90)] * 5 + [run(100, price=0)]
    (result,) = run_checks(
        run(100, price=90), previous, QualityPolicy(checks=frozenset({"coverage"}))
    )
    assert (result.baseline, result.runs) == (0.9, 5)
    items = run_checks(
        run(100), previous, QualityPolicy(checks=frozenset({"items"}), baseline_runs=3)
    )
    assert (items[0].baseline, items[0].runs) == (3.0, 3)
