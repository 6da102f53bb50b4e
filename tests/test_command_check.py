"""`scrapy check` runs the `products` contracts against a shop named by `-a start_url=…`;
`check` and `parse` without a spider's required argument fail in one line."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.support import run_contained, scrapy_env
from tests.test_safety_crawl import LocalServer

if TYPE_CHECKING:
    from pathlib import Path

    from crawler.demo.server import DemoSite

pytestmark = pytest.mark.timeout(120)
NEEDS_START_URL = "error: products needs -a start_url=URL (the shop's home page)"


def scrapy(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_contained(
        [sys.executable, "-m", "scrapy", *args], cwd=cwd, env=scrapy_env(), timeout=90
    )


def test_products_contracts_pass_against_the_demo_shop(tmp_path: Path, demo_site: DemoSite) -> None:
    done = scrapy(tmp_path, "check", "products", "-a", f"start_url={demo_site.url}/")

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    summary = done.stderr.strip().splitlines()
    assert summary[-1] == "OK"
    ran = [line for line in summary if line.startswith("Ran ")]
    assert ran and int(ran[0].split()[1]) >= 5, summary  # parse and parse_product contracts
    assert not (tmp_path / "data").exists()  # contracts store nothing


def test_products_contracts_fail_against_a_site_without_products(tmp_path: Path) -> None:
    empty = LocalServer({"*": (200, {}, "<html><body>no shop here</body></html>")})
    try:
        done = scrapy(tmp_path, "check", "products", "-a", f"start_url={empty.url()}")
    finally:
        empty.close()

    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    assert "FAILED" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["check", "products"],
        ["parse", "--spider", "products", "-c", "parse_product", "http://127.0.0.1:1/products/3"],
    ],
)
def test_missing_required_argument_is_one_line_and_exit_2(args: list[str], tmp_path: Path) -> None:
    done = scrapy(tmp_path, *args)

    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [NEEDS_START_URL]
    assert "Traceback" not in done.stdout + done.stderr
