"""Your project's settings: set here what you want different from the defaults.

Every setting the project's components read has its default in ``crawler/defaults.py`` (see
docs/settings.md); the project add-on below installs those defaults and the project's
middlewares, pipelines and extensions under whatever you set here, in a spider's
``custom_settings`` or with ``scrapy crawl … -s NAME=VALUE``. Component dicts add to the
project's: ``DOWNLOADER_MIDDLEWARES = {"myproject.mw.Foo": 543}`` keeps the robots.txt, safety
and politeness middlewares, and ``{"crawler.middlewares.robots.RobotsTxtMiddleware": None}``
switches one off. Concurrency and politeness come from the profile named by ``CRAWL_PROFILE``
(``crawler/profiles.py``): set single values only to override the profile.
"""

from pathlib import Path

BOT_NAME = "crawler"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
COMMANDS_MODULE = "crawler.commands"
# `scrapy genspider NAME DOMAIN` uses the project's templates (crawler/templates/spiders/).
TEMPLATES_DIR = str(Path(__file__).parent / "templates")

# Installs the project's defaults, components, the profile and rendering (crawler/addon.py).
# Add your own add-ons to this dict; removing this one removes the whole project layer.
ADDONS = {"crawler.addon.ProjectAddon": 0}

# polite | balanced | fast (crawler/profiles.py). Keep `polite` for sites you do not own.
CRAWL_PROFILE = "polite"
ROBOTSTXT_OBEY = True
# Tell site owners who you are: set this to a URL or e-mail where they can reach you.
USER_AGENT = "crawler/0.1 (+set USER_AGENT to a URL or e-mail where site owners can reach you)"
LOG_LEVEL = "INFO"

# Read by the crawler process before any add-on runs, so they are set here.
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
# Refuses non-public DNS answers for hosts the user did not name (crawler/safety/resolver.py).
TWISTED_DNS_RESOLVER = "crawler.safety.resolver.SafeResolver"

# Where the data goes (defaults shown; see crawler/defaults.py for every setting):
# SQLITE_PATH = "data/crawler.sqlite"
# CSV_EXPORT_DIR = "data"
