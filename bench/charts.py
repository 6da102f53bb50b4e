"""The PNG charts: the contestants side by side, and the concurrency sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter

if TYPE_CHECKING:
    from pathlib import Path

OURS = "#d62728"
OTHERS = "#7f7f7f"


def _bars(ax: Any, labels: list[str], values: list[float], colors: list[str], fmt: str) -> None:
    bars = ax.barh(labels, values, color=colors)
    ax.invert_yaxis()
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:{fmt}}", va="center")
    ax.margins(x=0.25)


def figures(
    summary: dict[str, dict[str, dict[str, Any]]],
    results: dict[str, Any],
    path: Path,
    labels: dict[str, str],
) -> Path:
    panels = []
    if "C" in summary:
        panels.append(("C", "pages_per_s", "C: pages/s (higher is better)", ",.0f"))
    if "L" in summary:
        panels.append(("L", "crawl", "L: crawl time, s (lower is better)", ".1f"))
    memory = "C" if "C" in summary else "L"
    if memory in summary:
        panels.append((memory, "peak_rss_mib", f"{memory}: peak RSS, MiB (log)", ",.0f"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.4 * len(panels) + 0.6), squeeze=False)
    for ax, (name, key, title, fmt) in zip(axes[:, 0], panels, strict=True):
        rows = summary[name]
        names = [labels.get(k, k) for k in rows]
        colors = [OURS if k.startswith("ours") else OTHERS for k in rows]
        _bars(ax, names, [rows[k][key] for k in rows], colors, fmt)
        ax.set_title(title, loc="left", fontsize=10)
        if key == "peak_rss_mib":
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
        if key == "crawl" and "ideal" in results["workloads"][name]:
            ideal = results["workloads"][name]["ideal"]
            ax.axvline(
                ideal, color="black", linestyle="--", linewidth=1, label=f"ideal {ideal:g} s"
            )
            ax.legend(loc="lower right", fontsize=8, frameon=False)
    machine = results["machine"]
    fig.suptitle(
        f"{results['mode']['name']} mode, {machine['cores']} cores, {machine['date']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sweep(points: list[dict[str, Any]], path: Path) -> Path:
    """Crawl time against the ideal (left) and pages/s (right) for each concurrency level."""
    levels = [p["concurrency"] for p in points]
    urls = points[0]["pages"] or 0
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(levels, [p["crawl"] for p in points], "o-", color=OURS, label="our crawler")
    ideal = [p["ideal"] for p in points]
    left.plot(levels, ideal, "--", color="black", label="ideal N × 200 ms / c")
    left.set_yscale("log")
    left.set_ylabel("crawl time, s (log)")
    left.legend()
    rate = [urls / p["crawl"] if p["crawl"] else 0.0 for p in points]
    right.plot(levels, rate, "o-", color=OURS, label="our crawler")
    right.plot(levels, [urls / p["ideal"] for p in points], "--", color="black", label="ideal")
    right.set_yscale("log")
    right.set_ylabel("pages/s (log)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(levels, [str(level) for level in levels])
        ax.set_xlabel("CONCURRENT_REQUESTS (= per domain)")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"Workload L ({urls:,} URLs at 200 ms): where more concurrency stops helping")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
