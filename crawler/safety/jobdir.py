"""``JobDirGuard``: a ``JOBDIR`` someone else could have written to is refused before it is read.

Scrapy keeps pickled requests (``requests.queue/``) and pickled spider state (``spider.state``) in
``JOBDIR``, and unpickling runs code. So when ``JOBDIR`` is set, this extension checks, before any
other component opens it, that the directory and everything in it belong to the user running
the crawl (or root) and that nobody else may write to them (not world-writable, not in a
world-writable parent without the sticky bit). Otherwise the crawl does not start:
``UntrustedJobDir`` says which path is wrong and why. A missing ``JOBDIR`` is created private
(mode 0700). No setting: it is always on when ``JOBDIR`` is set.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from scrapy.exceptions import NotConfigured

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class UntrustedJobDir(RuntimeError):
    """``JOBDIR`` holds files others could have planted; the message is one line for users."""


def check_jobdir(path: Path) -> None:
    """Create ``path`` private if missing; ``UntrustedJobDir`` if others could write to it."""
    if not path.exists():
        _check_writers(path.parent, parent=True)
        path.mkdir(mode=0o700, parents=True)
        return
    if not path.is_dir():
        raise UntrustedJobDir(f"JOBDIR {path} is not a directory")
    _check_writers(path.resolve().parent, parent=True)
    for directory, subdirs, files in os.walk(path):
        for name in [".", *subdirs, *files]:
            _check_writers(Path(directory, name), parent=False)


def _check_writers(path: Path, parent: bool) -> None:
    try:
        info = path.stat()  # follows symbolic links: the target is what gets read
    except OSError as exc:
        raise UntrustedJobDir(f"JOBDIR: cannot check {path}: {exc.strerror or exc}") from None
    if info.st_uid not in (os.geteuid(), 0):
        raise UntrustedJobDir(
            f"JOBDIR: {path} belongs to another user (uid {info.st_uid}); refusing to load it"
        )
    writable_by_all = bool(info.st_mode & stat.S_IWOTH)
    if parent and stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX:
        writable_by_all = False  # /tmp: others cannot replace what is ours in it
    if writable_by_all and parent:
        raise UntrustedJobDir(
            f"JOBDIR: {path}, the directory holding JOBDIR, is writable by every user, so JOBDIR"
            " may be swapped for planted pickles; refusing to use it (move JOBDIR elsewhere)"
        )
    if writable_by_all:
        raise UntrustedJobDir(
            f"JOBDIR: {path} is writable by every user, so it may hold planted pickles;"
            " refusing to load it (remove write access for others, or use a new JOBDIR)"
        )


class JobDirGuard:
    """Checks ``JOBDIR`` (see the module docstring) when the crawler is built."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> JobDirGuard:
        jobdir = crawler.settings.get("JOBDIR")
        if not jobdir:
            raise NotConfigured  # nothing to guard (no message: not worth a warning)
        path = Path(jobdir).expanduser()
        try:
            check_jobdir(path)
        except UntrustedJobDir as exc:
            logger.error("%s", exc)  # one clear line before Scrapy's traceback of the failed start
            raise
        return cls(path)
