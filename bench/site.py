"""The bench's static site: the demo shop's product pages as files, and URL lists over them.

Pages come from the demo renderer (``crawler.demo.routes.route``) for ``/products/1…1000``;
``/p/00001.html`` … ``/p/NNNNN.html`` cycle through them, so every URL is distinct (no dedupe
or cache can help) while the site stays small: the files are hard links to 1,000 bodies.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from crawler.demo.catalog import PRICE_ON_REQUEST_IDS, PRODUCT_COUNT
from crawler.demo.routes import route

ROBOTS = b"User-agent: *\nDisallow: /private/\n"


@dataclass(frozen=True)
class Site:
    root: Path  # the document root: /robots.txt, /p/NNNNN.html
    size: int  # how many /p/ pages exist

    @staticmethod
    def path(n: int) -> str:
        return f"/p/{n:05d}.html"

    def url_file(self, base: str, count: int, name: str) -> Path:
        """A file of ``count`` distinct URLs under ``base`` (``http://127.0.0.1:PORT``).

        Beyond the site's size the pages repeat with a ``?n=`` query (which nginx ignores), so
        the URLs stay distinct.
        """
        file = self.root.parent / f"{name}.txt"
        with file.open("w", encoding="ascii") as out:
            for n in range(1, count + 1):
                query = f"?n={n}" if count > self.size else ""
                out.write(f"{base}{self.path((n - 1) % self.size + 1)}{query}\n")
        return file


def product_id(n: int) -> int:
    """The demo product behind page ``n`` (1-based)."""
    return (n - 1) % PRODUCT_COUNT + 1


def expected_complete(count: int) -> int:
    """How many of the first ``count`` pages carry all four fields (some prices are on request)."""
    return sum(1 for n in range(1, count + 1) if product_id(n) not in PRICE_ON_REQUEST_IDS)


def build_site(workdir: Path, size: int) -> Site:
    """Write the product bodies once, then hard-link ``size`` page names to them."""
    root = workdir / "www"
    if root.exists():
        shutil.rmtree(root)
    bodies, pages = root / "bodies", root / "p"
    bodies.mkdir(parents=True)
    pages.mkdir()
    (root / "robots.txt").write_bytes(ROBOTS)
    for pid in range(1, PRODUCT_COUNT + 1):
        page = route(f"/products/{pid}", {}, "127.0.0.1", 0.0)
        (bodies / f"{pid}.html").write_bytes(page.body)
    site = Site(root, size)
    for n in range(1, size + 1):
        target = pages / Path(site.path(n)).name
        source = bodies / f"{product_id(n)}.html"
        try:
            os.link(source, target)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(source, target)
    return site
