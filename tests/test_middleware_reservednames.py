"""ReservedNamesMiddleware: .invalid and .onion hosts fail before the downloader (no DNS)."""

from __future__ import annotations

import pytest
from scrapy import Request, Spider
from scrapy.exceptions import CannotResolveHostError, NotConfigured
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from crawler.middlewares.reservednames import ReservedNamesConfig, ReservedNamesMiddleware

pytestmark = pytest.mark.timeout(30)


def make(**settings: object) -> ReservedNamesMiddleware:
    return ReservedNamesMiddleware.from_crawler(get_crawler(Spider, dict(settings)))


@pytest.mark.parametrize(
    "url",
    [
        "http://no-such-host.invalid/",
        "https://a.b.INVALID./x",
        "http://invalid/",
        "http://exampleexampleexample.onion/",
    ],
)
def test_reserved_names_fail_at_once_and_are_not_retried(url: str) -> None:
    mw = make()
    request = Request(url)
    with pytest.raises(CannotResolveHostError, match="never resolve"):
        mw.process_request(request)
    assert request.meta["dont_retry"] is True
    assert mw.crawler.stats.get_value("reservednames/refused") == 1


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/", "http://invalid.example.com/", "http://notinvalid/"]
)
def test_other_names_pass(url: str) -> None:
    assert make().process_request(Request(url)) is None


def test_settings() -> None:
    with pytest.raises(NotConfigured):
        ReservedNamesConfig.from_settings(Settings({"RESERVEDNAMES_ENABLED": False}))
    config = ReservedNamesConfig.from_settings(Settings({"RESERVEDNAMES_SUFFIXES": ".test, local"}))
    assert config.suffixes == ("test", "local")
    assert config.reserved("printer.local") == "local"
