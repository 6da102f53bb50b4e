"""``scrapy crawl`` inside the test process: the same command code, without starting a process.

A subprocess crawl pays a second or more of interpreter start and imports before its first
request; most tests check what a crawl stored and said, not how a process exits on a signal.
``crawl_in_process`` runs the project's ``crawl`` command's own option handling and argument
checks (``Command.process_options``) and its exit-status rule (``exit_status``), then the crawl
with a ``CrawlerRunner`` on the session's reactor (``tests.reactor``: the asyncio reactor, as
``TWISTED_REACTOR`` asks, in a thread of its own). Log records and what the crawl
writes to stderr (the summary) are captured as a subprocess's stderr would be.

Subprocess crawls (``tests.support.run_crawl_in(..., subprocess=True)``) stay for what only a
process shows: signals, the terminal, Scrapyd, the exit status of ``scrapy`` itself.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.crawler import CrawlerRunner
from scrapy.utils.misc import build_from_crawler, load_object
from scrapy.utils.project import get_project_settings

from crawler.commands.crawl import Command, exit_status
from tests import reactor

if TYPE_CHECKING:
    from collections.abc import Iterator

    from scrapy.crawler import Crawler
    from scrapy.settings import Settings
    from twisted.internet.defer import Deferred

_resolver: list[Any] = []  # the DNS resolver installed on the session's reactor, once
# one in-process crawl at a time: the working directory, sys.stderr and the log are per process
_one_at_a_time = threading.Lock()


def _install_resolver(settings: Settings) -> None:
    """What ``CrawlerProcess`` does at start: the ``TWISTED_DNS_RESOLVER`` on the reactor."""
    if _resolver:
        return
    from twisted.internet import reactor as twisted_reactor

    class _Process:  # Scrapy passes the process: the resolvers only read .settings
        def __init__(self, settings: Settings) -> None:
            self.settings = settings

    resolver_class = load_object(settings["TWISTED_DNS_RESOLVER"])
    process = _Process(settings)
    resolver = build_from_crawler(resolver_class, process, reactor=twisted_reactor)  # type: ignore[arg-type]
    resolver.install_on_reactor()
    _resolver.append(resolver)


@contextlib.contextmanager
def _captured_log(stream: io.StringIO, settings: Settings) -> Iterator[None]:
    """Log records at ``LOG_LEVEL`` and above to ``stream``, formatted as Scrapy formats them."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(settings["LOG_FORMAT"], settings["LOG_DATEFORMAT"]))
    handler.setLevel(settings["LOG_LEVEL"])
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(handler.level, level) if level else handler.level)
    filters = {h: list(h.filters) for h in root.handlers}
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for other, before in filters.items():  # the secret filter a crawl adds to every handler
            other.filters[:] = before


@contextlib.contextmanager
def _in_project(workdir: Path) -> Iterator[None]:
    """``workdir`` as the working directory and the project's settings module, as ``scrapy``
    run there has them; both restored after."""
    cwd = Path.cwd()
    previous = os.environ.get("SCRAPY_SETTINGS_MODULE")
    os.chdir(workdir)
    os.environ["SCRAPY_SETTINGS_MODULE"] = "crawler.settings"
    try:
        yield
    finally:
        os.chdir(cwd)
        if previous is None:
            os.environ.pop("SCRAPY_SETTINGS_MODULE", None)
        else:
            os.environ["SCRAPY_SETTINGS_MODULE"] = previous


def crawl_in_process(workdir: Path, argv: list[str]) -> tuple[int, str, str]:
    """``scrapy crawl ARGV…`` run in this process with ``workdir`` as the working directory;
    returns the exit status, stdout and stderr as the command would give them."""
    if not _one_at_a_time.acquire(blocking=False):
        raise RuntimeError("in-process crawls run one at a time: use subprocess=True in parallel")
    try:
        return _crawl(workdir, argv)
    finally:
        _one_at_a_time.release()


def _crawl(workdir: Path, argv: list[str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with _in_project(workdir):
        settings = get_project_settings()
        command = Command()
        parser = argparse.ArgumentParser(prog="scrapy crawl", conflict_handler="resolve")
        settings.setdict(command.default_settings, priority="command")
        command.settings = settings
        command.add_options(parser)
        opts, args = parser.parse_known_args(argv)
        with (
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
            _captured_log(stderr, settings),
        ):
            try:
                command.process_options(args, opts)
            except SystemExit as exited:
                return int(exited.code or 0), stdout.getvalue(), stderr.getvalue()
            reasons: list[str] = []
            crawlers: list[Crawler] = []

            def closed(spider: Any, reason: str) -> None:
                reasons.append(reason)

            def start() -> Deferred[None]:  # in the reactor thread, as the command's crawl runs
                _install_resolver(settings)
                runner = CrawlerRunner(settings)
                crawler = runner.create_crawler(args[0])
                crawlers.append(crawler)
                crawler.signals.connect(closed, signal=signals.spider_closed, weak=False)
                return runner.crawl(crawler, **opts.spargs)

            failed = False
            try:
                reactor.call(start)
            except Exception:
                logging.getLogger("scrapy.crawler").exception("the crawl could not start")
                failed = True
            if not crawlers:
                return 1, stdout.getvalue(), stderr.getvalue()
            status = exit_status(crawlers[0], reasons, bootstrap_failed=failed)
        return status, stdout.getvalue(), stderr.getvalue()


def crawl_spider_class(
    workdir: Path, spidercls: type[Any], settings: dict[str, Any] | None = None
) -> tuple[Crawler, str]:
    """Crawl ``spidercls`` (any ``scrapy.Spider``, ours or not) in this process with the
    project's settings (and ``settings`` at command-line priority), ``workdir`` as the working
    directory; returns the finished crawler and what it logged."""
    if not _one_at_a_time.acquire(blocking=False):
        raise RuntimeError("in-process crawls run one at a time: use subprocess=True in parallel")
    stderr = io.StringIO()
    try:
        with _in_project(workdir):
            project = get_project_settings()
            project.setdict(settings or {}, priority="cmdline")
            crawlers: list[Crawler] = []

            def start() -> Deferred[None]:
                _install_resolver(project)
                runner = CrawlerRunner(project)
                crawlers.append(runner.create_crawler(spidercls))
                return runner.crawl(crawlers[0])

            with contextlib.redirect_stderr(stderr), _captured_log(stderr, project):
                reactor.call(start)
            return crawlers[0], stderr.getvalue()
    finally:
        _one_at_a_time.release()
