"""``scrapy startproject``: Scrapy's project template, even inside this project.

``TEMPLATES_DIR`` (``crawler/settings.py``) points at the project's templates, which hold spider
templates only (``scrapy genspider``); a folder without ``project/`` falls back to Scrapy's.
"""

from __future__ import annotations

from pathlib import Path

import scrapy
from scrapy.commands.startproject import Command as ScrapyStartProjectCommand


class Command(ScrapyStartProjectCommand):
    @property
    def templates_dir(self) -> str:
        ours = Path(super().templates_dir)
        return str(ours if ours.is_dir() else Path(scrapy.__path__[0], "templates", "project"))
