"""One duration syntax for every place that takes one: ``-a min_age=…``, a schedule's ``every``,
``misfire_grace`` and ``max_runtime``.

``90`` (seconds), ``90s``, ``1.5m``, ``6h``, ``2d``, ``1w``, and compounds such as ``1h30m`` or
``1w2d``; a number (TOML integer or float) is seconds. ``ValueError`` with a one-line message.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from crawler.export.columns import to_datetime

UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
EXAMPLES = "90 (seconds), 30m, 1h30m, 6h, 2d or 1w"


def parse_duration(value: str | int | float, *, allow_zero: bool = False) -> timedelta:
    """``value`` as a ``timedelta`` (see the module docstring); zero only when ``allow_zero``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as {EXAMPLES}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            parts = _PART.findall(text)
            if not parts or _PART.sub("", text).strip():
                raise ValueError(f"expected a duration such as {EXAMPLES}")
            seconds = sum(float(number) * UNITS[unit] for number, unit in parts)
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"expected a duration of more than 0 seconds, such as {EXAMPLES}")
    return timedelta(seconds=seconds)


def describe(delta: timedelta) -> str:
    """The shortest spelling of ``delta`` in one unit: ``2h``, ``90s``, ``1w``."""
    seconds = delta.total_seconds()
    for unit, size in UNITS.items():
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def when(value: Any) -> str:
    """A stored timestamp as ``2026-11-25 12:00:00`` (UTC), or ``-``."""
    try:
        return to_datetime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"
    except ValueError:
        return str(value)


def duration(run: dict[str, Any]) -> str:
    """``6.2 s``, ``3 m 05 s``, ``2 h 03 m``; ``-`` for a run that never finished."""
    try:
        seconds = (to_datetime(run["finished_at"]) - to_datetime(run["started_at"])).total_seconds()
    except (TypeError, ValueError):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} m"
