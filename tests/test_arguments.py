from __future__ import annotations

import pytest

from crawler.arguments import Arg, boolean, join_repeated, parse_arguments, positive_int, regex
from crawler.exceptions import ArgumentError
from crawler.seeds import validate_url
from crawler.spiders.pages import PagesSpider
from crawler.spiders.site import SiteSpider

SPEC = {
    "url": Arg(validate_url, multiple="urls"),
    "depth": Arg(positive_int, default=3),
    "sitemap": Arg(boolean, default=False),
    "allow": Arg(regex, multiple="lines"),
}


def test_defaults_and_types() -> None:
    values = parse_arguments(SPEC, {"depth": "5", "sitemap": "yes"})
    assert values == {"url": None, "depth": 5, "sitemap": True, "allow": None}


def test_url_lists_split_on_repeats_and_commas_that_start_a_url() -> None:
    raw = "http://a.test/x?q=1,2, https://b.test/\nhttp://c.test/"
    values = parse_arguments(SPEC, {"url": raw})
    assert values["url"] == ["http://a.test/x?q=1,2", "https://b.test/", "http://c.test/"]


def test_patterns_keep_their_commas() -> None:
    values = parse_arguments(SPEC, {"allow": r"/p/\d{1,3}" + "\n" + "/q/"})
    assert values["allow"] == [r"/p/\d{1,3}", "/q/"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"depth": "-1"}, "invalid argument depth='-1': must be a positive integer"),
        ({"depth": "many"}, "invalid argument depth='many'"),
        ({"sitemap": "perhaps"}, "must be true or false"),
        ({"allow": "("}, "invalid regular expression"),
        ({"url": "file:///etc/passwd"}, "scheme 'file' not allowed"),
        ({"allowed_domains": "evil.test"}, "unknown argument 'allowed_domains'"),
        ({"custom_settings": "{}"}, "unknown argument 'custom_settings'"),
    ],
)
def test_bad_arguments_are_one_line_errors(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ArgumentError) as info:
        parse_arguments(SPEC, raw)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_scrapyd_job_argument_is_accepted() -> None:
    assert parse_arguments(SPEC, {"_job": "abc"})["_job"] == "abc"


def test_spiders_refuse_attribute_injection() -> None:
    with pytest.raises(ArgumentError, match="unknown argument 'name'"):
        PagesSpider(url="http://a.test/", name="../x")
    spider = SiteSpider(start_url="http://a.test/")
    assert spider.allowed_domains == ["a.test"]
    with pytest.raises(ArgumentError, match="unknown argument 'allowed_domains'"):
        SiteSpider(start_url="http://a.test/", allowed_domains="evil.test")


def test_spiders_check_required_arguments() -> None:
    with pytest.raises(ArgumentError, match="pages needs -a url=URL or -a urls=FILE"):
        PagesSpider.parse_arguments({})
    with pytest.raises(ArgumentError, match="site needs -a start_url"):
        SiteSpider.parse_arguments({"depth": "2"})


def test_repeated_a_options_are_joined() -> None:
    assert join_repeated(["url=a", "depth=2", "url=b", "broken"]) == [
        "url=a\nb",
        "depth=2",
        "broken",
    ]
