"""Project settings: declarative defaults, grouped by component.

Every value here can be overridden with ``scrapy crawl … -s NAME=VALUE``. Concurrency and
politeness come from the profile named by ``CRAWL_PROFILE`` (see ``crawler/profiles.py``); this
file deliberately does not set them, so the profile can fill them in and ``-s`` still wins.
"""

BOT_NAME = "crawler"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
COMMANDS_MODULE = "crawler.commands"

# --- Politeness and concurrency -------------------------------------------------------------
# polite | balanced | fast. Sets CONCURRENT_REQUESTS*, DOWNLOAD_DELAY, AUTOTHROTTLE_*, RETRY_TIMES,
# DOWNLOAD_TIMEOUT (see crawler/profiles.py and the README). Keep `polite` for sites you do not own.
CRAWL_PROFILE = "polite"
ADDONS = {"crawler.profiles.ProfileAddon": 0}
ROBOTSTXT_OBEY = True
# Tell site owners who you are: set this to a URL or e-mail where they can reach you.
USER_AGENT = "crawler/0.1 (+set USER_AGENT to a URL or e-mail where site owners can reach you)"

# --- Safety -----------------------------------------------------------------------------------
# Both consoles run code inside the crawl process: off.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
DOWNLOAD_MAXSIZE = 32 * 1024 * 1024
DOWNLOAD_WARNSIZE = 8 * 1024 * 1024

# --- Engine -----------------------------------------------------------------------------------
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = "INFO"

# --- Item pipelines (each one switchable with its *_ENABLED setting) --------------------------
ITEM_PIPELINES = {
    "crawler.pipelines.clean.CleanPipeline": 100,
    "crawler.pipelines.validate.ValidatePipeline": 200,
    "crawler.pipelines.dedupe.DedupePipeline": 300,
    "crawler.pipelines.sqlite.SQLitePipeline": 400,
    "crawler.pipelines.csv_file.CsvPipeline": 500,
}
CLEAN_ENABLED = True
VALIDATE_ENABLED = True
# Text fields longer than this are rejected (a 10 MB "name" is a broken page, not data).
VALIDATE_MAX_FIELD_CHARS = 100_000
DEDUPE_ENABLED = True

# --- SQLite store -----------------------------------------------------------------------------
SQLITE_ENABLED = True
SQLITE_PATH = "data/crawler.sqlite"
SQLITE_BATCH_SIZE = 500  # items per write transaction
SQLITE_BATCH_SECONDS = 2.0  # and at least this often while items arrive
SQLITE_BUSY_TIMEOUT = 30.0  # seconds to wait for another writer
SQLITE_SYNCHRONOUS = "NORMAL"  # with WAL: durable at checkpoints, never corrupt

# --- CSV files --------------------------------------------------------------------------------
CSV_ENABLED = True
CSV_EXPORT_DIR = "data"
# Placeholders: {spider}, {item} (the item's table), {run} (run id, or time when no store),
# {time} (UTC start time, YYYYmmddTHHMMSSZ). The result must stay under CSV_EXPORT_DIR.
CSV_FILENAME = "{spider}-{item}-{time}.csv"
CSV_NEUTRALIZE_FORMULAS = True
CSV_ENCODING = "utf-8"

# --- Extensions -------------------------------------------------------------------------------
EXTENSIONS = {
    "crawler.extensions.runrecorder.RunRecorder": 100,
    "crawler.extensions.progress.Progress": 200,
}
PROGRESS_ENABLED = True
PROGRESS_TTY_INTERVAL = 0.5  # seconds between updates of the live line on a terminal
PROGRESS_LOG_INTERVAL = 10.0  # seconds between progress log lines when not on a terminal

# --- Incremental recrawls (conditional requests, min_age) --------------------------------------

# --- Exit status and scheduling ----------------------------------------------------------------

# --- Export ------------------------------------------------------------------------------------

# --- Politeness: Retry-After backoff, robots.txt, circuit breaker -------------------------------

# --- Safety: private targets, secrets -----------------------------------------------------------

# --- JavaScript rendering (scrapy-playwright) ---------------------------------------------------
