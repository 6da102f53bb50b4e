"""Files that appear complete or not at all: a hidden part file, fsynced, then renamed into place.

Used by the CSV pipeline (one part file per item class, published when the crawl closes) and by
``scrapy export`` (``crawler.export.atomic``). Until ``publish`` renames it, a reader sees the
previous file of that name (or none); a process killed before then leaves only the hidden
``.NAME.part-…`` file behind, never a truncated ``NAME``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Any


def part_path(path: Path) -> Path:
    """A fresh hidden name beside ``path``: ``.NAME.part-<pid>-<random>``."""
    return path.with_name(f".{path.name}.part-{os.getpid()}-{secrets.token_hex(4)}")


def create_part(part: Path, mode: str = "xb", **options: Any) -> IO[Any]:
    """Open ``part`` for writing (an ``x`` mode: it must not exist yet).

    ``open`` creates it with mode 0o666 minus the umask, as any new file; ``tempfile`` would give
    0600, and the published file would keep it.
    """
    if "x" not in mode:
        raise ValueError(f"create_part needs an exclusive-create mode, not {mode!r}")
    return part.open(mode, **options)


def publish(handle: IO[Any], path: Path) -> None:
    """Flush, fsync and close ``handle`` (an open part file), then rename it to ``path``."""
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    Path(handle.name).replace(path)  # os.replace: atomic within one filesystem
    fsync_dir(path.parent)


def discard(handle: IO[Any]) -> None:
    """Close and remove an unpublished part file; the previous file of the name is untouched."""
    with contextlib.suppress(OSError):
        handle.close()
    with contextlib.suppress(OSError):
        Path(handle.name).unlink()


def fsync_dir(directory: Path) -> None:
    """Make a rename durable (best effort: not every platform can open a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
