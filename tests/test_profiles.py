from __future__ import annotations

import pytest
from scrapy.settings import Settings

from crawler import settings as project_settings
from crawler.addon import install_defaults
from crawler.profiles import COMPONENT_SETTINGS, PROFILES, ProfileAddon, UnknownProfileError


def settings_with(**cmdline: object) -> Settings:
    settings = Settings()
    settings.setmodule(project_settings, priority="project")
    settings.update(cmdline, priority="cmdline")
    install_defaults(settings)
    ProfileAddon().update_settings(settings)
    return settings


def test_default_profile_is_polite_with_autothrottle() -> None:
    settings = settings_with()
    assert settings["CRAWL_PROFILE"] == "polite"
    assert settings.getbool("AUTOTHROTTLE_ENABLED")
    assert settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") == 2
    assert settings.getfloat("DOWNLOAD_DELAY") == 1.0


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_sets_every_value(name: str) -> None:
    settings = settings_with(CRAWL_PROFILE=name)
    for key, value in PROFILES[name].items():
        if key in COMPONENT_SETTINGS:  # added to the project's components, not replacing them
            assert settings.getdict(key).items() >= value.items()
        else:
            assert settings[key] == value


def test_command_line_setting_wins_over_profile() -> None:
    settings = settings_with(CRAWL_PROFILE="fast", CONCURRENT_REQUESTS="7")
    assert settings.getint("CONCURRENT_REQUESTS") == 7
    assert settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") == 100


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(UnknownProfileError, match="choose one of polite, balanced, fast"):
        settings_with(CRAWL_PROFILE="turbo")


def test_safe_defaults() -> None:
    settings = settings_with()
    assert settings.getbool("TELNETCONSOLE_ENABLED") is False
    assert settings.getbool("REMOTE_CONTROL_ENABLED") is False
    assert settings.getint("DOWNLOAD_MAXSIZE") == 32 * 1024 * 1024
    assert settings["FEED_EXPORT_ENCODING"] == "utf-8"
    assert settings.getbool("ROBOTSTXT_OBEY")
    assert "USER_AGENT" in settings["USER_AGENT"]


SAFE_AIOHTTP = "crawler.safety.aiohttp_handler.SafeAiohttpDownloadHandler"


def test_fast_profile_fetches_through_the_safe_aiohttp_handler() -> None:
    handlers = settings_with(CRAWL_PROFILE="fast").getdict("DOWNLOAD_HANDLERS")
    assert handlers["http"] == handlers["https"] == SAFE_AIOHTTP
    assert handlers["file"] is None  # the project's table stays
    # a handler the user names wins; the other profiles keep Scrapy's default
    mine = settings_with(CRAWL_PROFILE="fast", DOWNLOAD_HANDLERS={"http": "my.Handler"})
    assert mine.getdict("DOWNLOAD_HANDLERS")["http"] == "my.Handler"
    assert "http" not in settings_with().getdict("DOWNLOAD_HANDLERS")
    # a crawl that renders leaves http and https to the rendering add-on
    rendering = settings_with(CRAWL_PROFILE="fast", RENDER_MODE="auto")
    assert "http" not in rendering.getdict("DOWNLOAD_HANDLERS")
