"""Publish an output file atomically: write a hidden temporary file beside it, then rename.

Until the rename, a reader sees the previous file (or none); after it, the complete new one. On
any failure (and on Ctrl-C or SIGTERM, which the command turns into exceptions) the temporary
file is removed and the previous file is left byte for byte as it was. A ``kill -9`` can leave
only the hidden ``.NAME.part-…`` file behind, never a truncated ``NAME``.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

from crawler.atomicfile import create_part, discard, part_path, publish
from crawler.export import ExportError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that becomes ``path`` only if the ``with`` block completes."""
    try:
        if path.parent.exists() and not path.parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "Is a directory")
        handle = create_part(part_path(path))
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        yield handle
        publish(handle, path)
    except OSError as exc:
        discard(handle)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        discard(handle)
        raise
