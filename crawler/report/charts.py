"""The report's charts: matplotlib figures drawn to inline SVG strings.

Each chart is its own ``matplotlib.figure.Figure`` drawn by the SVG canvas (no pyplot, no global
figure state), with text kept as text (``svg.fonttype = none``: small files, selectable labels)
and no metadata, so the SVG holds no URL and no date. A chart with nothing to draw is ``None``.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from matplotlib.axes import Axes

WIDTH, HEIGHT = 12.5, 3.0  # inches at 72 dpi: 900 x 216 px, the width of the page
COLOURS = ("#2b6cb0", "#dd6b20", "#38a169", "#c53030", "#6b46c1", "#718096")
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)  # the XML declaration and DOCTYPE
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
# matplotlib's structural ids (figure_1, axes_1…) repeat in every chart of the page and nothing
# refers to them; the ids that are referred to (clip paths, markers) are salted hashes.
_PLAIN_IDS = re.compile(r' id="[A-Za-z][A-Za-z.]*_\d+"')


def _figure(height: float = HEIGHT) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(WIDTH, height), dpi=72, layout="constrained")
    axes = figure.add_subplot()
    axes.spines["top"].set_visible(False)
    axes.spines["right"].set_visible(False)
    axes.grid(axis="y", color="#e2e8f0", linewidth=0.6)
    axes.set_axisbelow(True)
    return figure, axes


def to_svg(figure: Figure, name: str) -> str:
    """The figure as an inline ``<svg>`` element (ids salted by ``name``: unique in the page)."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9.0, "svg.hashsalt": name}):
        FigureCanvasSVG(figure).print_svg(  # type: ignore[no-untyped-call]
            buffer, metadata={"Date": None, "Creator": None, "Format": None, "Type": None}
        )
    svg = _METADATA.sub("", _PROLOGUE.sub("", buffer.getvalue(), count=1))
    svg = _PLAIN_IDS.sub("", svg)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{name}" ', 1)


def _legend(axes: Axes) -> None:
    """The legend outside the plot, to its right: it never hides a line or a bar."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _short(label: str, width: int = 40) -> str:
    """A label cut to ``width``, its ``$`` escaped (matplotlib would read ``$…$`` as math)."""
    text = label if len(label) <= width else label[: width - 1] + "\u2026"
    return text.replace("$", r"\$")


def series(
    name: str,
    elapsed: Sequence[float],
    lines: Mapping[str, Sequence[float]],
    ylabel: str,
    *,
    steps: bool = False,
) -> str | None:
    """Lines over elapsed time (seconds, shown in minutes past 10 minutes). ``steps``: each value
    is a rate over the interval that ends at its time, drawn flat over that interval."""
    if len(elapsed) < 2 or not lines:
        return None
    minutes = elapsed[-1] > 600
    x = [t / 60 for t in elapsed] if minutes else list(elapsed)
    figure, axes = _figure()
    for colour, (label, values) in zip(COLOURS, lines.items(), strict=False):
        axes.plot(
            x, values, label=_short(label), color=colour, linewidth=1.4,
            drawstyle="steps-pre" if steps else "default",
        )  # fmt: skip
    axes.set_xlabel("minutes" if minutes else "seconds")
    axes.set_ylabel(ylabel)
    axes.set_ylim(bottom=0)
    _legend(axes)
    return to_svg(figure, name)


def bars(
    name: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    xlabel: str = "",
    ylabel: str = "",
    horizontal: bool = False,
    colours: Sequence[str] | None = None,
    integer: bool = True,
) -> str | None:
    """One bar per label; horizontal for long labels (hosts, reasons), largest on top."""
    if not labels or not any(values):
        return None
    shown = [_short(str(label)) for label in labels]
    colour = list(colours) if colours else COLOURS[0]
    if horizontal:
        figure, axes = _figure(max(1.6, 0.28 * len(labels) + 0.8))
        axes.grid(False)
        axes.grid(axis="x", color="#e2e8f0", linewidth=0.6)
        positions = range(len(shown))
        drawn = axes.barh(positions, list(values)[::-1], color=colour[::-1] if colours else colour)
        axes.set_yticks(list(positions), shown[::-1])
        axes.set_xlabel(xlabel)
        if integer:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        figure, axes = _figure()
        positions = range(len(shown))
        drawn = axes.bar(positions, list(values), color=colour)
        axes.set_xticks(list(positions), shown)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        if integer:
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        if len(labels) > 8:
            axes.tick_params(axis="x", labelrotation=45)
    # each bar's count on it: a 3 beside a 1,050 is still read
    shown_values = list(values)[::-1] if horizontal else list(values)
    texts = [f"{v:,.0f}" if integer else f"{v:,.2f}" for v in shown_values]
    axes.bar_label(drawn, labels=texts, fontsize=8, padding=2)
    return to_svg(figure, name)


def grouped_bars(
    name: str,
    labels: Sequence[str],
    groups: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "",
    percent: bool = False,
) -> str | None:
    """Horizontal bars, one group of bars per label (e.g. this run vs previous runs)."""
    if not labels or not groups:
        return None
    count = len(groups)
    height = 0.8 / count
    figure, axes = _figure(max(1.8, (0.22 * count + 0.12) * len(labels) + 1.0))
    axes.grid(False)
    axes.grid(axis="x", color="#e2e8f0", linewidth=0.6)
    positions = range(len(labels))
    for index, (colour, (group, values)) in enumerate(zip(COLOURS, groups.items(), strict=False)):
        ys = [
            len(labels) - 1 - p + (count - 1 - index - (count - 1) / 2) * height for p in positions
        ]
        scaled = [v * 100 for v in values] if percent else list(values)
        axes.barh(ys, scaled, height=height, color=colour, label=_short(group))
    axes.set_yticks(
        [len(labels) - 1 - p for p in positions], [_short(str(label)) for label in labels]
    )
    if percent:
        axes.set_xlim(0, 100)
    axes.set_xlabel(xlabel)
    _legend(axes)
    return to_svg(figure, name)


def runs_lines(
    name: str, run_ids: Sequence[int], lines: Mapping[str, Sequence[float]], ylabel: str
) -> str | None:
    """Values per run (x: run id), one marked line each."""
    if not run_ids or not lines:
        return None
    figure, axes = _figure()
    x = [str(run) for run in run_ids]
    for colour, (label, values) in zip(COLOURS, lines.items(), strict=False):
        axes.plot(x, values, label=_short(label, 30), color=colour, marker="o", linewidth=1.4)
    axes.set_xlabel("run")
    axes.set_ylabel(ylabel)
    axes.set_ylim(bottom=0)
    _legend(axes)
    return to_svg(figure, name)
