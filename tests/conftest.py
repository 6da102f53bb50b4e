"""Shared fixtures: the demo site and fault sockets on 127.0.0.1, and a `scrapy crawl` runner."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler.demo.server import DemoSite
from tests.support import run_crawl_in


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
