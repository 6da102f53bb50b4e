"""``scrapy check [SPIDER]`` with spider arguments checked first, and nothing stored.

* ``-a NAME=VALUE`` as for ``scrapy crawl`` (repeats joined); the contracts of the products
  spider run against the shop it names: ``scrapy check products -a start_url=URL``
  (``@path`` in ``crawler.contracts``).
* A spider with contracts whose arguments are missing or bad is a one-line ``error: …`` and
  exit status 2, where stock Scrapy prints a traceback and then "Ran 0 contracts … OK".
* Contracts discard what callbacks return: Scrapy empties ``ITEM_PIPELINES`` and the project's
  pipelines stay off too, as do fetch-state records (``CONDITIONAL_ENABLED``); no run is
  recorded (``RUN_RECORD``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.commands.check import Command as ScrapyCheckCommand
from scrapy.contracts import ContractsManager
from scrapy.settings import SETTINGS_PRIORITIES
from scrapy.spiderloader import get_spider_loader
from scrapy.utils.conf import build_component_list
from scrapy.utils.misc import load_object

from crawler import defaults
from crawler.addon import install_defaults
from crawler.arguments import join_repeated
from crawler.exceptions import ArgumentError
from crawler.exitcodes import usage_errors

if TYPE_CHECKING:
    import argparse

    from scrapy.settings import BaseSettings

# Scrapy's own priority for the settings `check` switches off: above a spider's, below -s
_CHECK_PRIORITY = (SETTINGS_PRIORITIES["spider"] + SETTINGS_PRIORITIES["cmdline"]) // 2


class Command(ScrapyCheckCommand):
    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        opts.spargs = join_repeated(opts.spargs or [])
        super().process_options(args, opts)
        assert self.settings is not None
        _nothing_stored(self.settings)
        install_defaults(self.settings)
        if opts.list:
            return
        with usage_errors():  # before the crawler process starts and logs its banner
            _check_arguments(self.settings, args, opts.spargs)


def _nothing_stored(settings: BaseSettings) -> None:
    pipelines = {path: None for path in defaults.COMPONENTS["ITEM_PIPELINES"]}
    for name, value in (("ITEM_PIPELINES", pipelines), ("CONDITIONAL_ENABLED", False)):
        settings.set(name, value, priority=_CHECK_PRIORITY)  # ignored below a -s value


def _check_arguments(settings: BaseSettings, names: list[str], spargs: dict[str, str]) -> None:
    """Parse the arguments of every spider whose contracts will run; ``ArgumentError`` if bad."""
    contracts = build_component_list(
        settings.get_component_priority_dict_with_base("SPIDER_CONTRACTS")
    )
    manager = ContractsManager(load_object(c) for c in contracts)
    loader = get_spider_loader(settings)
    for name in names or loader.list():
        try:
            spidercls = loader.load(name)
        except KeyError:
            raise ArgumentError(f"no spider named {name!r} (see `scrapy list`)") from None
        parse = getattr(spidercls, "parse_arguments", None)
        if parse is not None and manager.tested_methods_from_spidercls(spidercls):
            parse(spargs)
