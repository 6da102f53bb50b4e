"""Turn the raw figures into ``<stem>.json``, ``<stem>.md`` and the charts."""

from __future__ import annotations

import json
import statistics
from typing import TYPE_CHECKING, Any

from bench import charts
from bench.contestants import BASELINE, CONTESTANTS

if TYPE_CHECKING:
    from pathlib import Path

MIB = 2**20
LABELS = {c.key: c.label for c in CONTESTANTS}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def summarize(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per contestant: medians over its runs, pages/s, and ratios to the baseline and ideal."""
    rows: dict[str, dict[str, Any]] = {}
    for key, runs in workload["runs"].items():
        if not runs:
            continue
        crawl = _median(runs, "crawl")
        completes = [int(r.get("complete") or 0) for r in runs]
        rows[key] = {
            "runs": len(runs),
            "crawl": crawl,
            "wall": _median(runs, "wall"),
            "cpu": _median(runs, "cpu"),
            "peak_rss_mib": _median(runs, "peak_rss") / MIB,
            "pages_per_s": workload["urls"] / crawl,
            "complete": min(completes),
            "complete_ok": min(completes) >= workload["expected_complete"]
            and all(r["returncode"] == 0 for r in runs),
        }
    base = rows.get(BASELINE)
    for row in rows.values():
        row["speed_vs_baseline"] = base["crawl"] / row["crawl"] if base else None
        row["ideal_ratio"] = row["crawl"] / workload["ideal"] if "ideal" in workload else None
    return rows


def _workload_table(name: str, workload: dict[str, Any], rows: dict[str, dict[str, Any]]) -> str:
    ideal = workload.get("ideal")
    head = (
        "| contestant | runs | crawl s | wall s | pages/s | CPU s | peak RSS MiB "
        f"| × {BASELINE} speed |{' × ideal time |' if ideal else ''} all 4 fields |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, row in rows.items():
        fields = f"{row['complete']:,}/{workload['expected_complete']:,}"
        fields = fields if row["complete_ok"] else f"**✗ {fields}**"
        lines.append(
            f"| {LABELS.get(key, key)} | {row['runs']} | {row['crawl']:.2f} | {row['wall']:.2f}"
            f" | {row['pages_per_s']:,.0f} | {row['cpu']:.1f} | {row['peak_rss_mib']:,.0f}"
            + (f" | {speed:.2f}" if (speed := row["speed_vs_baseline"]) is not None else " | –")
            + (f" | {row['ideal_ratio']:.2f}" if ideal else "")
            + f" | {fields} |"
        )
    if ideal:
        title = (
            f"{name}: {workload['urls']:,} URLs, 200 ms each, 100 at a time (ideal {ideal:.1f} s)"
        )
    else:
        title = f"{name}: {workload['urls']:,} URLs from the static server, no latency (CPU-bound)"
    return f"### {title}\n\n" + "\n".join(lines)


def targets(summary: dict[str, dict[str, dict[str, Any]]], results: dict[str, Any]) -> list[str]:
    """The issue's goals, each with where we landed (for each of our contestants)."""
    out = []
    lat, cpu = summary.get("L", {}), summary.get("C", {})
    for ours in ("ours", "ours2"):
        name = LABELS[ours]
        if ours in lat:
            row, base = lat[ours], lat.get(BASELINE)
            out.append(f"L, {name}: {row['ideal_ratio']:.2f}× the ideal time (goal ≤ 1.10)")
            if base:
                speed = base["crawl"] / row["crawl"]
                out.append(f"L, {name}: {speed:.2f}× aiohttp's speed (goal ≥ 1)")
        for key, goal in ((BASELINE, "goal ≥ 0.5"), ("stock", "goal ≥ 3.0"), ("tuned", "no goal")):
            if ours in cpu and key in cpu:
                ratio = cpu[ours]["pages_per_s"] / cpu[key]["pages_per_s"]
                out.append(f"C, {name}: {ratio:.2f}× the pages/s of {LABELS[key]} ({goal})")
        for workload, rows in summary.items():
            if ours in rows and "pool" in rows:
                share = rows[ours]["peak_rss_mib"] / rows["pool"]["peak_rss_mib"]
                out.append(f"{workload}, {name}: {share:.3f}× Pool(100)'s summed RSS (goal ≤ 0.1)")
    memory = results.get("memory", [])
    for row in memory:
        if row["urls"] == max(r["urls"] for r in memory):
            rss = row["peak_rss"] / MIB
            out.append(f"{row['urls']:,} URLs, {row['way']}: peak {rss:,.0f} MiB (goal < 500 MB)")
    return [f"- {line}" for line in out]


def _sweep_table(points: list[dict[str, Any]]) -> str:
    lines = ["| concurrency | crawl s | ideal s | × ideal | pages/s | CPU s | peak RSS MiB |"]
    lines.append("|---|---|---|---|---|---|---|")
    for p in points:
        lines.append(
            f"| {p['concurrency']} | {p['crawl']:.2f} | {p['ideal']:.2f}"
            f" | {p['crawl'] / p['ideal']:.2f} | {(p['pages'] or 0) / p['crawl']:,.0f}"
            f" | {p['cpu']:.1f} | {p['peak_rss'] / MIB:,.0f} |"
        )
    return "\n".join(lines)


def _memory_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| URLs to crawl | how | in the scheduler | peak RSS MiB | wall s |"]
    lines.append("|---|---|---|---|---|")
    for r in rows:
        if r["frontier"] is not None:
            queued = f"{r['frontier']:,}"
        else:
            queued = "–" if r["way"].startswith("seen") else "≈ concurrency"
        lines.append(
            f"| {r['urls']:,} | {r['way']} | {queued} | {r['peak_rss'] / MIB:,.0f}"
            f" | {r['wall']:.1f} |"
        )
    return "\n".join(lines)


def markdown(results: dict[str, Any], summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    m = results["machine"]
    parts = [
        f"# Benchmark results ({results['mode']['name']} mode, {m['date']})",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; "
        f"Python {m['python']}, Scrapy {m['scrapy']}, aiohttp {m['aiohttp']}; static server "
        f"{m['static_server']} ({m.get('static_server_errors', 0)} errors logged). "
        f"Load average {m['load_at_start']} at start, "
        f"{m.get('load_at_end')} at end; {m.get('bench_minutes')} minutes in all. Servers, "
        "crawlers and whatever else runs here share the same cores: compare ratios, not "
        "bare numbers.",
        "Crawl s: from a contestant's first request to its last answer (median of the runs); "
        "wall s: the whole process, start-up included. pages/s = URLs / crawl s. CPU s: user + "
        "system of the process and its children. Peak RSS: summed over all its processes.",
        "## Targets\n\n" + "\n".join(targets(summary, results)),
    ]
    for name, workload in results["workloads"].items():
        parts.append(_workload_table(name, workload, summary[name]))
    if results.get("sweep"):
        parts.append("### Concurrency sweep (our crawler, latency server)\n\n")
        parts[-1] += _sweep_table(results["sweep"])
    if results.get("memory"):
        parts.append("### Memory: URLs in the frontier (our crawler)\n\n")
        parts[-1] += _memory_table(results["memory"])
    return "\n\n".join(parts) + "\n"


def write(results: dict[str, Any], out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    summary = {name: summarize(w) for name, w in results["workloads"].items()}
    results["summary"] = summary
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    paths[0].write_text(json.dumps(results, indent=1, default=str) + "\n")
    paths[1].write_text(markdown(results, summary))
    if summary:
        paths.append(charts.figures(summary, results, out / f"{stem}.png", LABELS))
    if results.get("sweep"):
        sweep = out / ("sweep.png" if stem == "latest" else f"{stem}-sweep.png")
        paths.append(charts.sweep(results["sweep"], sweep))
    return paths


if __name__ == "__main__":  # `python -m bench.report bench/results/latest.json`: redraw
    import sys
    from pathlib import Path

    source = Path(sys.argv[1])
    for path in write(json.loads(source.read_text()), source.parent, source.stem):
        print(path)
