"""A progress bar on stderr while an export runs, only when stderr is a terminal."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@contextmanager
def progress_bar(
    total: int | None, label: str, stream: TextIO | None = None
) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(rows)``; draws a rich bar on a terminal, does nothing otherwise."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield lambda rows: None
        return
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
    except ImportError:  # rich is a dependency; without it, just no bar
        yield lambda rows: None
        return

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=stream), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda rows: bar.advance(task, rows)
