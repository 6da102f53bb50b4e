"""``python -m crawler.demo crawl``: serve the demo shop and crawl it with ``scrapy crawl``.

This is what ``make crawl`` runs: a real crawl, in its own ``scrapy crawl`` process, against the
demo site on 127.0.0.1:8765 (a free port when that one is taken: the same start_url each time, so
the runs compare with each other); the crawl itself prints the summary and where the
SQLite store, the CSV file and the HTML report (``REPORT_AT_CLOSE``) are.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

from crawler.demo.server import DemoSite

if TYPE_CHECKING:
    from collections.abc import Sequence


def crawl_command(url: str, spider: str, extra: Sequence[str]) -> list[str]:
    """The ``scrapy crawl`` command line for a spider against the demo site at ``url``."""
    seed = {"pages": "url", "site": "start_url", "products": "start_url"}[spider]
    return [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        spider,
        "-a",
        f"{seed}={url}",
        # The demo site is ours to load: no politeness delay needed.
        "-s",
        "CRAWL_PROFILE=fast",
        # The live progress line and the final summary say what happened; -s LOG_LEVEL=INFO
        # in `extra` brings Scrapy's full log back.
        "-s",
        "LOG_LEVEL=WARNING",
        # a crawl of a few seconds: samples for the report's charts twice a second
        "-s",
        "SAMPLE_INTERVAL=0.5",
        # ...and the HTML report (scrapy report) of the run, whose path it prints last.
        "-s",
        "REPORT_AT_CLOSE=True",
        *extra,
    ]


# The demo site's port when it is free: the same start_url every time, so the runs of `make crawl`
# are runs of one crawl (a recrawl answered by 304s, checks across runs against the earlier runs).
DEMO_PORT = 8765


def demo_site() -> DemoSite:
    """The demo site, started on ``DEMO_PORT``, or on any free port when that one is taken."""
    try:
        return DemoSite(port=DEMO_PORT).start()
    except OSError:
        return DemoSite().start()


def run_demo_crawl(spider: str = "products", extra: Sequence[str] = ()) -> int:
    """Serve the demo site, crawl it, stop the site; the crawl's exit status."""
    site = demo_site()
    try:
        print(f"Demo site at {site.url}", flush=True)
        env = dict(os.environ, SCRAPY_SETTINGS_MODULE="crawler.settings")
        return subprocess.call(crawl_command(site.url, spider, extra), env=env)
    finally:
        site.stop()
