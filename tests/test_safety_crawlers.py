"""U3 (docs/faults.md): the private-target policy belongs to each crawler, not to the process.

Two crawlers run in one process (``AsyncCrawlerProcess``, one after the other and at the same
time): the first allows private targets and names its own seeds on 127.0.0.1 and localhost
(and reaches an unnamed port through both); the second does neither, and its pages link and
redirect to the first one's origin, by IP and as ``localhost`` (a name the resolver answers with
127.0.0.1). The second must not reach it. Then the browser check and the process-wide
resolver, component by component: one crawler's permission or named origins never answer for
another's.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from scrapy.utils.test import get_crawler

from crawler.middlewares.targets import PrivateTargetMiddleware
from crawler.safety.resolver import BlockedLookup, SafeResolver
from tests.support import run_contained, scrapy_env
from tests.test_safety_crawl import HANDLERS, LocalServer, page, redirect

# Runs both crawls in one process; argv[1]: {"mode", "workdir", "a": URL, "b": URL}.
TWO_CRAWLERS = """
import asyncio, json, sys
from scrapy.crawler import AsyncCrawlerProcess, Crawler
from scrapy.utils.project import get_project_settings
from crawler.spiders.site import SiteSpider

plan = json.loads(sys.argv[1])
base = get_project_settings()
process = AsyncCrawlerProcess(base, install_root_handler=True)
results = {}

def crawler(name, **overrides):
    settings = base.copy()
    settings.setdict({
        "SQLITE_PATH": f"{plan['workdir']}/{name}.sqlite",
        "CSV_EXPORT_DIR": f"{plan['workdir']}/{name}-out",
        "ROBOTSTXT_OBEY": False, "CRAWL_PROFILE": "fast",
        "DOWNLOAD_HANDLERS": {"http": plan["handler"], "https": plan["handler"]}, **overrides,
    }, priority="cmdline")
    return Crawler(SiteSpider, settings)

async def run(name, crawler, url):
    await process.crawl(crawler, start_url=url)
    stats = crawler.stats.get_stats()
    results[name] = {k: v for k, v in stats.items() if isinstance(v, int | str)}

async def main():
    from twisted.internet import reactor
    try:
        first = crawler("a", SAFETY_ALLOW_PRIVATE_TARGETS=True)
        second = crawler("b")
        if plan["mode"] == "sequential":
            await run("a", first, plan["a"])
            await run("b", second, plan["b"])
        else:
            await asyncio.gather(run("a", first, plan["a"]), run("b", second, plan["b"]))
        print(json.dumps(results))
    finally:
        reactor.callLater(0, reactor.stop)

asyncio.get_event_loop().create_task(main())
process.start(stop_after_crawl=False)
"""


@dataclass
class Servers:
    first: LocalServer  # the first crawler's seed: 127.0.0.1:FIRST, named by it
    beyond: LocalServer  # linked from the first's page: private, reached only because allowed
    second: LocalServer  # the second crawler's seeds (by IP and by name), leading to FIRST

    def close(self) -> None:
        for server in (self.first, self.beyond, self.second):
            server.close()


def serve() -> Servers:
    beyond = LocalServer({"/": page()})
    first = LocalServer()
    first.routes.update(
        {
            "/": page(beyond.url("/from-first")),
            # reached as localhost:FIRST: approved by the first crawler, checked by the resolver
            "/by-name": page(beyond.url("/from-first-name", host="localhost")),
        }
    )
    second = LocalServer()
    second.routes.update(
        {
            "/": page(first.url("/from-second-link"), "/redirect"),
            "/redirect": redirect(first.url("/from-second-redirect")),
            # reached as localhost:SECOND: a link to the same host name on FIRST's port
            "/by-name": page(first.url("/from-second-name", host="localhost")),
        }
    )
    return Servers(first, beyond, second)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("handler", sorted(HANDLERS))
@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_u3_a_crawler_allowing_private_targets_leaves_the_next_one_strict(
    mode: str, handler: str, tmp_path: Path
) -> None:
    servers = serve()
    try:
        first, second = servers.first, servers.second
        plan = {
            "mode": mode, "workdir": str(tmp_path), "handler": HANDLERS[handler],
            "a": f"{first.url('/')},{first.url('/by-name', 'localhost')}",
            "b": f"{second.url('/')},{second.url('/by-name', 'localhost')}",
        }  # fmt: skip
        done = run_contained(
            [sys.executable, "-c", TWO_CRAWLERS, json.dumps(plan)],
            cwd=tmp_path, env=scrapy_env(), timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        stats = json.loads(done.stdout.strip().splitlines()[-1])
        # the first crawler allowed private targets: it reached an unnamed 127.0.0.1 port
        assert sorted(h.path for h in servers.beyond.hits) == ["/from-first", "/from-first-name"]
        assert stats["a"].get("safety/blocked_private", 0) == 0
        # the second did not: its link, its localhost link and its redirect never connected
        assert sorted(h.path for h in first.hits) == ["/", "/by-name"], first.hits
        assert stats["b"]["safety/blocked_private"] == 3, stats["b"]
        assert {"/redirect", "/by-name"} <= {h.path for h in second.hits}
    finally:
        servers.close()


def test_u3_the_browser_check_and_the_resolver_use_the_asking_crawlers_policy() -> None:
    allowing = get_crawler(settings_dict={"SAFETY_ALLOW_PRIVATE_TARGETS": True})
    strict = get_crawler()
    PrivateTargetMiddleware.from_crawler(allowing)._name("http://10.0.0.5:8080/")
    PrivateTargetMiddleware.from_crawler(strict)
    resolver = SafeResolver(None, 100, 5.0)  # type: ignore[arg-type]
    # the process-wide resolver: another crawler's permission allows no unnamed private answer
    with pytest.raises(BlockedLookup, match=r"evil\.test resolves to 10\.0\.0\.9"):
        resolver.check("10.0.0.9", "evil.test")

    from crawler.safety.browser import abort_request_for

    def aborted(crawler: object, url: str) -> bool:
        check = abort_request_for(crawler)  # type: ignore[arg-type]
        return asyncio.run(check(BrowserRequest(url)))  # type: ignore[arg-type]

    for url in ("http://10.0.0.1/", "http://10.0.0.5:8080/"):  # allowed, then named by the first
        assert aborted(strict, url) is True
        assert aborted(allowing, url) is False
    assert aborted(strict, "http://93.184.216.34/") is False


@dataclass
class BrowserRequest:
    url: str
    resource_type: str = "xhr"
