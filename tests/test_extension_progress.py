"""The live progress line on a terminal: log records print above it, never into it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from crawler.demo.server import DemoSite
from tests.support import run_on_terminal

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[[\w.]+\] (INFO|WARNING|ERROR)")


def screen_lines(output: str) -> list[str]:
    """What the terminal showed, line by line: escape codes dropped, each carriage return and
    cursor movement starting a new piece (a piece is what was drawn in one go)."""
    pieces = ANSI.sub("\n", output.replace("\r", "\n"))
    return [line for line in pieces.split("\n") if line.strip()]


@pytest.mark.timeout(120)
def test_log_records_never_run_into_the_progress_line(tmp_path: Path) -> None:
    with DemoSite(slow_seconds=0.3) as site:
        command = [
            sys.executable, "-m", "scrapy", "crawl", "products", "-a", f"start_url={site.url}",
            "-s", f"SQLITE_PATH={tmp_path / 'crawler.sqlite'}",
            "-s", f"CSV_EXPORT_DIR={tmp_path / 'out'}", "-s", "CRAWL_PROFILE=fast",
            "-s", "PROGRESS_TTY_INTERVAL=0.1", "-s", "LOG_LEVEL=INFO",
        ]  # fmt: skip
        status, output = run_on_terminal(
            command, cwd=tmp_path, columns=250, stdout=False, timeout=100
        )
    assert status == 0, output[-2000:]
    lines = screen_lines(output)
    progress = [line for line in lines if "pages/s" in line]
    assert progress, "no progress line was drawn"
    assert any(re.search(r"\d+:\d\d:\d\d elapsed", line) for line in progress)
    warnings = [line for line in lines if "Rejected ProductItem" in line]
    assert len(warnings) == 2, warnings  # the demo shop's two products without a price
    for line in lines:
        record = LOG_RECORD.search(line)
        assert record is None or record.start() == 0, f"log record glued to other text: {line!r}"
    assert "Crawl finished" in output
