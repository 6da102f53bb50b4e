"""Publish an output file atomically: write a hidden temporary file beside it, then rename.

Until the rename, a reader sees the previous file (or none); after it, the complete new one. On
any failure (and on Ctrl-C or SIGTERM, which the command turns into exceptions) the temporary
file is removed and the previous file is left byte for byte as it was. A ``kill -9`` can leave
only the hidden ``.NAME.part-…`` file behind, never a truncated ``NAME``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

from crawler.export import ExportError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def part_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.part-{os.getpid()}-{secrets.token_hex(4)}")


@contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that becomes ``path`` only if the ``with`` block completes."""
    try:
        if path.parent.exists() and not path.parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "Is a directory")
        part = part_path(path)
        # os.open with 0o666: the published file gets the usual umask mode, not tempfile's 0600
        handle = os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        part.replace(path)
    except OSError as exc:
        _discard(part)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        _discard(part)
        raise
    _fsync_dir(path.parent)


def _discard(part: Path) -> None:
    with contextlib.suppress(OSError):
        part.unlink()


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
