"""Shared fixtures: the demo site and fault sockets on 127.0.0.1, and a `scrapy crawl` runner."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler.demo.server import DemoSite
from tests import reactor
from tests.redisserver import MISSING, REDIS_SERVER, RedisServer
from tests.support import run_crawl_in


def pytest_configure(config: pytest.Config) -> None:
    reactor.install()  # the asyncio reactor, before any test module imports the reactor


@pytest.fixture(autouse=True)
def _main_thread_event_loop() -> None:
    """Every test starts with the reactor's loop as the main thread's current loop."""
    reactor.restore_main_loop()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Tests marked ``reactor_thread`` run in the reactor's thread, where its event loop runs
    (components that start timers or tasks when built); pytest waits for them."""
    if pyfuncitem.get_closest_marker("reactor_thread") is None:
        return None
    if getattr(pyfuncitem.obj, "in_reactor", False):
        return None  # an async test of its own (tests.reactor.in_reactor)
    names = pyfuncitem._fixtureinfo.argnames
    reactor.call(pyfuncitem.obj, **{name: pyfuncitem.funcargs[name] for name in names})
    return True


@pytest.fixture(scope="session")
def demo_site() -> Iterator[DemoSite]:
    """The demo shop, shared by the session (its hit counter is shared too)."""
    with DemoSite(slow_seconds=0.3) as site:
        yield site


@pytest.fixture
def fresh_demo_site() -> Iterator[DemoSite]:
    """A demo shop of the test's own, for tests that count hits."""
    with DemoSite(slow_seconds=0.3) as site:
        yield site


@pytest.fixture
def refused_url() -> str:
    """A URL on a port that was bound and closed again: connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/refused"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A URL whose server accepts the connection and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/silent"


@pytest.fixture
def run_crawl(tmp_path: Path) -> Any:
    """`run_crawl(spider, *args)`: a crawl whose files live in the test's tmp_path."""
    return lambda spider, *args, **kw: run_crawl_in(tmp_path, spider, *args, **kw)


@pytest.fixture(scope="session")
def crawl_in() -> Any:
    """`crawl_in(workdir, spider, *args)`: for module-scoped fixtures that share one crawl."""
    return run_crawl_in


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of the test's own (127.0.0.1, a free port, AOF on in a temp dir)."""
    if not REDIS_SERVER.exists():
        pytest.skip(MISSING)
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.kill()
