"""`scrapy args SPIDER`: a spider's declared arguments, as a table or as JSON
(scrapy-spider-metadata's ``param_schema`` shape) for other tools."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

from crawler.exceptions import ArgumentError
from crawler.spiders.pages import PagesSpider
from crawler.spiders.products import ProductsSpider
from crawler.spiders.site import SiteSpider
from tests.support import scrapy_here

if TYPE_CHECKING:
    from crawler.spiders.base import BaseSpider

pytestmark = pytest.mark.timeout(60)


def test_args_lists_site_arguments_with_type_default_and_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    done = scrapy_here(capsys, "args", "site")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("site: Crawl a site: follow links from ``start_url``")
    table = lines[2 : lines.index("", 2)]
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in table)}
    assert rows.pop("NAME") == ["TYPE", "DEFAULT", "HELP"]
    assert list(rows) == list(SiteSpider.arguments_spec)
    assert rows["start_url"] == ["url, repeatable", "required", "where to start; repeatable"]
    assert rows["depth"] == ["integer>=0", "3", "link hops from a start URL"]
    assert rows["max_pages"] == ["integer>0", "1000", "stop scheduling after this many"]
    assert rows["sitemap"] == ["boolean", "false", "also seed from the site's sitemaps"]
    assert rows["render"][:2] == ["never|always|auto", "-"]
    assert lines[-1] == "scrapy crawl site -a NAME=VALUE …"


def test_args_json_is_a_param_schema(capsys: pytest.CaptureFixture[str]) -> None:
    done = scrapy_here(capsys, "args", "site", "--json")

    assert done.returncode == 0, done.stderr
    meta = json.loads(done.stdout)
    assert meta["name"] == "site"
    assert meta["description"].startswith("Crawl a site")
    schema = meta["param_schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["start_url"]
    props = schema["properties"]
    assert list(props) == list(SiteSpider.arguments_spec)
    assert props["start_url"] == {
        "title": "Start Url", "description": "where to start; repeatable",
        "type": "array", "items": {"type": "string", "format": "uri"},
    }  # fmt: skip
    assert props["depth"] == {
        "title": "Depth", "description": "link hops from a start URL",
        "type": "integer", "minimum": 0, "default": 3,
    }  # fmt: skip
    assert props["render"]["enum"] == ["never", "always", "auto"]
    assert "default" not in props["min_age"]


def test_args_of_an_unknown_spider_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    done = scrapy_here(capsys, "args", "nosuch")

    assert done.returncode == 2
    assert done.stderr.strip() == "error: no spider named 'nosuch' (see `scrapy list`)"


@pytest.mark.parametrize(
    ("spider", "required"),
    [(SiteSpider, ["start_url"]), (ProductsSpider, ["start_url"]), (PagesSpider, [])],
)
def test_arguments_marked_required_are_the_ones_the_spider_refuses_to_run_without(
    spider: type[BaseSpider], required: list[str]
) -> None:
    assert [name for name, arg in spider.arguments_spec.items() if arg.required] == required
    if required:  # pages needs url or urls: neither alone is required
        with pytest.raises(ArgumentError, match=required[0]):
            spider.parse_arguments({})
