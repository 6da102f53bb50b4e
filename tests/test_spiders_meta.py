"""Every spider module holds one spider named after the file, with documented arguments."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import crawler.spiders
from crawler.spiders.base import BaseSpider

MODULES = [m.name for m in pkgutil.iter_modules(crawler.spiders.__path__) if m.name != "base"]


@pytest.mark.parametrize("module_name", MODULES)
def test_spider_name_matches_file(module_name: str) -> None:
    module = importlib.import_module(f"crawler.spiders.{module_name}")
    spiders = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, BaseSpider) and obj is not BaseSpider
    ]
    assert [s.name for s in spiders] == [module_name]
    (spider,) = spiders
    assert spider.__doc__
    for name, arg in spider.arguments_spec.items():
        assert arg.help, f"{module_name}: argument {name} has no help"
