"""``scrapy settings``: Scrapy's command, showing the values a crawl will really use.

Scrapy's own command prints the settings files and ``-s`` options only. A crawl also gets the
project's defaults, components and profile from its add-ons (``crawler/addon.py``), so this
command runs the add-ons on the settings first: ``scrapy settings --get CONCURRENT_REQUESTS -s
CRAWL_PROFILE=fast`` prints 100, ``--get DOWNLOADER_MIDDLEWARES`` includes the project's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.commands.settings import Command as ScrapySettingsCommand

from crawler.addon import apply_addons

if TYPE_CHECKING:
    import argparse


class Command(ScrapySettingsCommand):
    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        apply_addons(self.settings)
