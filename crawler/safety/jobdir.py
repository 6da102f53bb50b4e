"""``JobDirGuard``: a ``JOBDIR`` someone else could have written to is refused before it is read.

Scrapy keeps pickled requests (``requests.queue/``) and pickled spider state (``spider.state``) in
``JOBDIR``, and unpickling runs code. So when ``JOBDIR`` is set, this extension checks, before any
other component opens it, that the directory and everything in it belong to the user running
the crawl (or root) and that nobody else may write to them (not world-writable, not in a
world-writable parent without the sticky bit). Otherwise the crawl does not start:
``UntrustedJobDir`` says which path is wrong and why. A missing ``JOBDIR`` is created private
(mode 0700). No setting: it is always on when ``JOBDIR`` is set.

Scrapy's JOBDIR resumes correctly only after a clean stop: the queue is saved at close, while the
fingerprints of seen requests are appended as they come, so after a ``kill -9`` the next run
filters every request it had queued and ends "finished" with pages missing. So the guard writes
a marker (``crawl.running``: pid and host) when the spider opens and removes it at a clean close;
a JOBDIR that still has one (or has seen requests and no saved queue) was left by an unclean stop
and is refused with one line (``UncleanJobDir``), as is one in use by a live crawl.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler.storage.liveness import pid_alive, this_host

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

MARKER = "crawl.running"  # in JOBDIR while a crawl uses it: "<pid> <host>"


class UntrustedJobDir(RuntimeError):
    """``JOBDIR`` holds files others could have planted; the message is one line for users."""


class UncleanJobDir(UntrustedJobDir):
    """``JOBDIR`` was left by a crawl that did not stop cleanly, or a live crawl uses it."""


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
    check_clean_stop(path)


def check_clean_stop(path: Path) -> None:
    """``UncleanJobDir`` unless the last crawl that used ``path`` stopped cleanly."""
    advice = (
        "Scrapy cannot resume it without skipping the requests it had queued; remove the"
        f" directory to start over (rm -r {path}), or drop JOBDIR to use the store's frontier,"
        " which resumes after a kill"
    )
    marker = path / MARKER
    if marker.exists():
        pid, host = _read_marker(marker)
        if host == this_host() and pid_alive(pid):
            raise UncleanJobDir(
                f"JOBDIR {path} is in use by another crawl (pid {pid}); wait for it to finish"
                " or give another JOBDIR"
            )
        raise UncleanJobDir(
            f"JOBDIR {path} was left by a crawl that did not stop cleanly (pid {pid} on"
            f" {host or 'an unknown host'}, killed or crashed): {advice}"
        )
    seen = path / "requests.seen"
    if (
        seen.is_file()
        and seen.stat().st_size
        and not (path / "requests.queue/active.json").exists()
    ):
        raise UncleanJobDir(
            f"JOBDIR {path} was left by a crawl that did not stop cleanly (seen requests and no"
            f" saved queue): {advice}"
        )


def _read_marker(marker: Path) -> tuple[int, str]:
    try:
        pid, _, host = marker.read_text(encoding="utf-8").strip().partition(" ")
        return int(pid), host
    except (OSError, ValueError):
        return 0, ""


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
    """Checks ``JOBDIR`` (see the module docstring) when the crawler is built, and marks it in
    use from the spider's opening to its clean close."""

    def __init__(self, crawler: Crawler, path: Path) -> None:
        self.crawler = crawler
        self.path = path
        self.marked = False

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
        guard = cls(crawler, path)
        crawler.signals.connect(guard.spider_opened, signal=signals.spider_opened)
        return guard

    def spider_opened(self) -> None:
        marker = self.path / MARKER
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {this_host()}\n")
        self.marked = True
        # connected now, after every other component's: the marker goes once they have saved
        # their state (Scrapy's SpiderState writes spider.state at spider_closed)
        self.crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    def spider_closed(self) -> None:
        if self.marked:
            (self.path / MARKER).unlink(missing_ok=True)
            self.marked = False
