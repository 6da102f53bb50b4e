"""The project's defaults: every setting its components read, and the components themselves.

This module is the one source of defaults, in the manner of Scrapy's ``default_settings``. It
is declarative: ``crawler.addon.ProjectAddon`` installs it into every crawl's settings, below
anything set in ``crawler/settings.py``, a spider's ``custom_settings`` or ``-s NAME=VALUE``.
Components also fall back to these values when they are built without the add-on (tests,
``get_crawler``). Concurrency and politeness are not here: they come from the profile named by
``CRAWL_PROFILE`` (``crawler/profiles.py``).

``COMPONENTS`` is the component table, one dict per Scrapy component setting, in priority order.
It is merged into the project's own dicts: a user's ``DOWNLOADER_MIDDLEWARES = {"my.Mw": 543}``
adds to it, and a component of the table is switched off only by naming it with ``None``.
"""

from __future__ import annotations

from typing import Any

# --- Safety -----------------------------------------------------------------------------------
# Both consoles run code inside the crawl process: off.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
DOWNLOAD_MAXSIZE = 32 * 1024 * 1024
DOWNLOAD_WARNSIZE = 8 * 1024 * 1024
FEED_EXPORT_ENCODING = "utf-8"
# -o/-O/FEEDS as JSON write every stored item: bytes as base64 (crawler/export/feeds.py).
FEED_EXPORTERS = {
    "json": "crawler.export.feeds.JsonFeedExporter",
    "jsonlines": "crawler.export.feeds.JsonLinesFeedExporter",
    "jsonl": "crawler.export.feeds.JsonLinesFeedExporter",
}
# True: links and redirects may reach loopback/private/link-local addresses (seeds always may).
SAFETY_ALLOW_PRIVATE_TARGETS = False
# scrapy-redis queues: requests as JSON, never pickle (crawler/safety/json_serializer.py).
SCHEDULER_SERIALIZER = "crawler.safety.json_serializer"
# What a rendered page loads in Chromium follows the same target policy (crawler/safety/browser.py).
PLAYWRIGHT_ABORT_REQUEST = "crawler.safety.browser.abort_private_request"

# --- Item pipelines (each one switchable with its *_ENABLED setting) --------------------------
CLEAN_ENABLED = True
# Day/month order of all-numeric dates in declared datetime fields: "DMY" (03/04/2026 is 3 April),
# "MDY" (March 4), or "" (neither: an ambiguous one is left as text and the item rejected).
CLEAN_DATE_ORDER = ""
VALIDATE_ENABLED = True
# Text values longer than this are rejected (a 10 MB "name" is a broken page, not data).
VALIDATE_MAX_FIELD_CHARS = 100_000
# JSON Schemas items must match, by item class name or spider name: {"quotes": "schemas/q.json"}
# (a path to a JSON file, or the schema itself). A spider's `item_schema` attribute works too.
VALIDATE_JSON_SCHEMAS: dict[str, Any] = {}
DEDUPE_ENABLED = True
# Where items are stored (crawler/itemtables.py): {item class name or spider name: table}; a dict
# item is looked up by its spider's name, a class by its name. {} keeps the rules: a class's
# `table`, else the spider's name for dicts and the class name in snake_case for classes.
ITEM_TABLES: dict[str, str] = {}
# Natural keys by table: {"quotes": ["text", "author"]}; beats a spider's `item_keys` and a class's
# `key`. A table without one identifies rows by a hash of their content (the `_key` column).
ITEM_KEYS: dict[str, list[str]] = {}

# --- SQLite store -----------------------------------------------------------------------------
SQLITE_ENABLED = True
SQLITE_PATH = "data/crawler.sqlite"
SQLITE_BATCH_SIZE = 500  # items per write transaction
SQLITE_BATCH_SECONDS = 2.0  # and at least this often while items arrive
SQLITE_BUSY_TIMEOUT = 30.0  # seconds to wait for another writer
SQLITE_SYNCHRONOUS = "NORMAL"  # with WAL: durable at checkpoints, never corrupt

# --- Durable frontier and workers (crawler/frontier) ---------------------------------------------
# Where the requests still to fetch live: "sqlite" (rows in the store, leased in batches: a crawl
# stopped or killed resumes by rerunning the same command), "redis" (one frontier in Redis shared
# by workers on many machines, see REDIS_* below) or "memory" (Scrapy's own scheduler).
# The frontier needs RUN_RECORD (crawl, runspider), and SQLITE_ENABLED unless it is in Redis;
# JOBDIR selects Scrapy's.
SCHEDULER = "crawler.frontier.scheduler.FrontierScheduler"
FRONTIER = "sqlite"
FRONTIER_FRESH = False  # True: abandon an unfinished crawl of the same spider and arguments
FRONTIER_RESUME_MAX_AGE = "7d"  # an unfinished crawl older than this starts again from its seeds
# Finish reasons after which the same command resumes the crawl (a killed process counts too).
FRONTIER_RESUME_REASONS = ["shutdown", "killed", "store_error", "memusage_exceeded", "cancelled"]
FRONTIER_LEASE_SECONDS = 300.0  # a request leased by a process that stops renewing it is re-queued
FRONTIER_LEASE_BATCH = 32  # requests leased per transaction
FRONTIER_MAX_ATTEMPTS = 3  # leases of one request before it is marked failed (a poison request)
FRONTIER_FLUSH_SECONDS = 1.0  # new requests and finished ones are written at least this often
RUN_HEARTBEAT_SECONDS = 10.0  # each crawl process records that it is alive this often
RUN_STALE_SECONDS = 60.0  # a process silent this long (or gone from this host) was killed
# Crawl processes sharing one frontier: an int, or "auto" (one per core). A host's concurrency and
# delay are shared out between them, so N workers are as polite as one.
WORKERS = "1"
# FRONTIER = "redis": the frontier of one crawl shared by workers on many machines
# (crawler/frontier/redisbackend.py). REDIS_URL as in scrapy-redis: redis://, rediss:// (TLS), a
# password as redis://:secret@host:6379/0 (masked in logs and runs); REDIS_PARAMS (extra redis-py
# client arguments) works as in scrapy-redis.
REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_KEY_PREFIX = "crawler"  # every key of a job: <prefix>:<spider>:<jobkey>:…
REDIS_IDLE_MAX_SECONDS = 5.0  # longest wait (with jitter) of an idle worker between two polls
REDIS_RETRY_SECONDS = 120.0  # how long a lost Redis is retried (back-off, jitter) before giving up
# FRONTIER = "redis" and REDIS_ITEMS = True: a worker appends its items (and rejects) to the job's
# Redis stream instead of its own SQLite store and CSV files (both pipelines stay off); one
# `scrapy ingest SPIDER` writes them into one store and one CSV per run (RedisItemsPipeline).
REDIS_ITEMS = False
REDIS_ITEMS_BATCH_SIZE = 500  # entries per pipelined XADD (also sent at each frontier flush)

# --- CSV files --------------------------------------------------------------------------------
CSV_ENABLED = True
CSV_EXPORT_DIR = "data"
# Placeholders: {spider}, {item} (the item's table), {run} (run id, or time when no store),
# {time} (UTC start time, YYYYmmddTHHMMSSZ). The result must stay under CSV_EXPORT_DIR.
# {run} keeps the files of runs started in the same second (parallel shards, two schedules) apart.
CSV_FILENAME = "{spider}-{item}-{time}-{run}.csv"
CSV_NEUTRALIZE_FORMULAS = True
CSV_ENCODING = "utf-8"

# --- Extensions -------------------------------------------------------------------------------
# Record the crawl in the store's runs table (RunRecorder). `scrapy crawl` and `scrapy runspider`
# set it True (command priority); shell, fetch, parse, check and scripts leave no run row.
RUN_RECORD = False
PROGRESS_ENABLED = True
PROGRESS_TTY_INTERVAL = 0.5  # seconds between updates of the live line on a terminal
PROGRESS_LOG_INTERVAL = 10.0  # seconds between progress log lines when not on a terminal
# The live figures as JSON for dashboards (`--status-file PATH`), replaced atomically every
# PROGRESS_STATUS_INTERVAL seconds and once at close; its directory is created. "": off.
# With WORKERS=N, worker k writes PATH with "-w<k>" before the extension.
PROGRESS_STATUS_FILE = ""
PROGRESS_STATUS_INTERVAL = 2.0
# Samples of the crawl for the run report (crawler/extensions/sampler.py): every SAMPLE_INTERVAL
# seconds and at close a run_samples row (pages, items, errors, rejects, bytes, rendered so far;
# requests in flight and queued); the stats get the latency histogram, per-host pages/errors/bytes
# (SAMPLE_MAX_HOSTS hosts by name, the rest summed as "(other)") and http/browser counts.
SAMPLE_ENABLED = True
SAMPLE_INTERVAL = 5.0  # seconds: a small INSERT each time; a day's crawl is ~17,000 rows
SAMPLE_MAX_HOSTS = 50
# The fast profile's LazyStartMiddleware: start() is read only as the crawl uses its requests.
LAZYSTART_ENABLED = True
LAZYSTART_BUFFER = 0  # requests kept waiting in the scheduler; 0: CONCURRENT_REQUESTS
# The HTML run report (crawler/report, `scrapy report`): REPORT_AT_CLOSE writes it when a crawl
# ends (ReportAtClose) and prints its path; reports go to REPORT_DIR/run-<id>.html.
REPORT_AT_CLOSE = False
REPORT_DIR = "data/reports"
REPORT_COMPARE_RUNS = 5  # previous runs (same spider and arguments) whose median coverage is shown
REPORT_SNAPSHOT_LINKS = 50  # snapshot files of failed pages and rejects linked from the report

# --- Incremental recrawls (conditional requests, min_age) --------------------------------------
# Record every fetch in the store's fetch_state table; needed for conditional requests and min_age.
CONDITIONAL_ENABLED = True
# Send If-None-Match/If-Modified-Since for known pages; off: fetch all in full (e.g. new selectors).
CONDITIONAL_REVALIDATE = True

# --- Exit status and scheduling ----------------------------------------------------------------
HEALTH_ENABLED = True  # off: only store_error, csv_error, shutdown, cancelled fail a run
# Finish reasons that count as success: a configured item or page cap is a job done.
HEALTH_OK_REASONS = ["finished", "closespider_itemcount", "closespider_pagecount"]
HEALTH_MAX_ERROR_RATIO = 0.5  # fail when more than this share of the requests ended in error
HEALTH_MIN_REQUESTS = 10  # the ratio applies from this many requests (or when all failed)
# Fail when items < this × the items of the previous successful run with the same arguments.
HEALTH_MIN_ITEM_RATIO = 0.5
# Fail when more than this share of the items that reached validation was rejected (and always
# when every item was rejected): a site whose markup changed stores nothing useful.
HEALTH_MAX_REJECT_RATIO = 0.5
# Stats summed as the run's item count: a recrawl's 304s and min_age skips are items kept current.
HEALTH_ITEM_STATS = ["item_scraped_count", "incremental/not_modified", "incremental/skipped_recent"]
# Field coverage (crawler/extensions/coverage.py): per item table, the items with a value for each
# field, stored with the run (field_coverage). Dict items with free-form keys: the first
# COVERAGE_MAX_FIELDS fields of a table are tracked, the rest summed as "(other fields)".
COVERAGE_ENABLED = True
COVERAGE_MAX_FIELDS = 100
# Checks across runs (crawler/quality/checks.py, run by HealthMonitor): this run against the
# median of the last QUALITY_BASELINE_RUNS successful runs of the same spider and arguments; a
# breach fails the run (finish reason quality_failed, exit status 1). Items: HEALTH_MIN_ITEM_RATIO.
# 5 runs: a median that one odd run does not move, and a week of daily runs.
QUALITY_BASELINE_RUNS = 5
QUALITY_CHECKS = ["items", "coverage", "errors", "statuses", "rejects"]
# Fail when a field's share of items with a value falls more than this (absolute) under its
# median: 0.2 catches a field gone empty on a changed page, not the normal drift of optional ones.
QUALITY_MAX_COVERAGE_DROP = 0.2
# Coverage (and the reject ratio) is judged from this many items of a table: fewer are noise
# (and a recrawl of 304s stores few), in this run and in each previous run counted.
QUALITY_MIN_ITEMS = 20
# Fail when the share of failed requests (from HEALTH_MIN_REQUESTS) rises this much over its median.
QUALITY_MAX_ERROR_RATIO_RISE = 0.1
# Fail when the share of a status class (2xx/3xx/4xx/5xx; 304 counts as 2xx) moves this much.
QUALITY_MAX_STATUS_SHIFT = 0.2
QUALITY_MAX_REJECT_RATIO_RISE = 0.1  # fail when the share of items rejected rises this much
# Absolute floors that need no previous run: {"price": 0.95, "products.rating": 0.5}.
QUALITY_MIN_COVERAGE: dict[str, float] = {}
QUALITY_IGNORE_FIELDS: list[str] = []  # "field" or "table.field": not compared across runs
# Alert hooks (crawler/extensions/alerts.py), called at close with the run summary as JSON.
# A command line (split like a shell does, run without one): the JSON on its stdin, env
# CRAWL_RUN_ID and CRAWL_EXIT_STATUS. "" : none.
ALERT_COMMAND = ""
ALERT_WEBHOOK = ""  # an http(s) URL that gets a POST of the JSON; "" : none (masked in logs)
ALERT_ON = "failure"  # "failure": runs whose exit status is not 0; "always": every run
ALERT_TIMEOUT = 10.0  # seconds each hook may take; a command still running is killed
# Error snapshots (crawler/extensions/snapshots.py): every page that finally failed (HTTP >= 400
# after retries, or an error without a response) is a failed_pages row of the run (always, for
# `scrapy export --failed RUN`); within the caps, its response is kept in SNAPSHOT_DIR/run-<id>/
# (headers with secrets masked, the body cut at SNAPSHOT_BODY_BYTES), as is the page of a
# rejected item. SNAPSHOTS_ENABLED = False: no files, the rows stay.
SNAPSHOTS_ENABLED = True
SNAPSHOT_DIR = "data/snapshots"
SNAPSHOT_MAX_COUNT = 100  # snapshots (JSON + body) kept per run and process; the rest counted
SNAPSHOT_MAX_BYTES = 20 * 1024 * 1024  # bytes of snapshot files per run and process
SNAPSHOT_BODY_BYTES = 256 * 1024  # bytes of a body kept (an error page, not a 30 MB download)
# A rendered page that answers >= 400 is also kept as a PNG screenshot of the browser's viewport
# (NNNN-<kind>.png, counted in SNAPSHOT_MAX_BYTES); False: none taken (a few tens of ms each).
SNAPSHOT_SCREENSHOTS = True
SCHEDULE_LOG_DIR = "data/logs"  # `scrapy schedule`: <dir>/<job>/<UTC time>.log, locks, state
SCHEDULE_STOP_TIMEOUT = 60.0  # seconds a crawl gets after SIGINT before it is killed

# --- Export ------------------------------------------------------------------------------------
# `scrapy export` / `scrapy runs` (CSV output also follows CSV_NEUTRALIZE_FORMULAS, CSV_ENCODING).
EXPORT_BATCH_ROWS = 5000  # rows fetched from SQLite and written per chunk (memory stays flat)
EXPORT_PARQUET_ROW_GROUP_ROWS = 100_000  # rows per Parquet row group
EXPORT_PARQUET_COMPRESSION = "zstd"  # none | snappy | gzip | brotli | zstd | lz4
# Item classes whose field types (Decimal, datetime, bool, list) the export uses for their tables.
EXPORT_ITEM_CLASSES = ["crawler.items.PageItem", "crawler.items.ProductItem"]
# Unfinished runs started within this many hours hold an export cursor back (no row is skipped).
EXPORT_CURSOR_INFLIGHT_HOURS = 24.0

# --- Politeness: Retry-After backoff, robots.txt, circuit breaker -------------------------------
# 429 (or 503 with Retry-After): no request to that host until the time has passed, then backoff.
RETRYAFTER_ENABLED = True
RETRYAFTER_HTTP_CODES = [429, 503]  # statuses that pause a host (503 only with Retry-After)
RETRYAFTER_BASE_DELAY = 1.0  # seconds: a host's first backoff; doubles with each 429 in a row
RETRYAFTER_MAX_DELAY = 300.0  # longest pause and backoff; a longer Retry-After is not retried
ROBOTSTXT_MAX_SIZE = 5 * 1024 * 1024  # bytes of a robots.txt that are read (RFC 9309: 500 KiB+)
ROBOTSTXT_UNREACHABLE_RETRY = 60.0  # seconds before asking again for a 5xx/timed-out robots.txt
ROBOTSTXT_MAX_CRAWL_DELAY = 60.0  # a longer robots.txt Crawl-delay is capped to this
CIRCUIT_ENABLED = True  # a host that stops answering is left alone for a while (circuit breaker)
CIRCUIT_FAILURES = 5  # connection failures/timeouts in a row that open a host's circuit
CIRCUIT_COOLDOWN = 30.0  # seconds before one probe request; doubles while the host stays down
CIRCUIT_MAX_COOLDOWN = 600.0  # longest cool-down between probes
# seconds a host's requests wait for its circuit to close before they fail; 0: fail at once
CIRCUIT_MAX_HOLD = 600.0
COMPRESSION_STRICT = True  # a truncated gzip/deflate/br/zstd body is data loss, not a page
RESERVEDNAMES_ENABLED = True  # hosts under these names fail at once, without a DNS query
RESERVEDNAMES_SUFFIXES = ["invalid", "onion"]  # RFC 6761 / RFC 7686 names that never resolve

# --- JavaScript rendering (scrapy-playwright) ---------------------------------------------------
# never | always | auto: which pages go through headless Chromium (`-a render=…` sets it per crawl).
RENDER_MODE = "never"
# True: install the browser even with RENDER_MODE=never, for spiders that set meta {"render": True}.
RENDER_ENABLED = False
# Playwright resource types aborted while rendering: pages load faster and use less memory.
RENDER_BLOCK_RESOURCES = ["image", "font", "media"]
# A browser context is closed and replaced after this many pages, so browser memory stays flat.
RENDER_CONTEXT_MAX_PAGES = 100
# CSS selector of a complete page: the browser waits for it, `auto` renders pages without it.
RENDER_WAIT_FOR = ""
# Seconds to wait after load for RENDER_WAIT_FOR, else for network idle (pages with scripts).
RENDER_WAIT_TIMEOUT = 5.0
RENDER_MAX_CLICKS = 20  # most clicks on a "load more" button (meta render_click) per page
RENDER_MIN_WORDS = 20  # auto: a page with scripts and fewer visible words is rendered
# auto: pages of one host+path pattern seen before its learnt fetcher is trusted.
RENDER_LEARN_AFTER = 3
RENDER_RECHECK_EVERY = 20  # auto: every Nth page of a browser-only pattern tries HTTP again
# Pages rendering at once (a page is reused for the next one); measured: 8 renders as fast as 16.
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 8
PLAYWRIGHT_MAX_CONTEXTS = 2  # browser contexts at once: the one in use and one being retired

# --- The component table -----------------------------------------------------------------------
# Merged into the settings of the same name (see the module docstring). ``None`` switches off one
# of Scrapy's own components that ours replace at the same place.
COMPONENTS: dict[str, dict[str, int | None]] = {
    "DOWNLOADER_MIDDLEWARES": {
        # outermost: a download that finally failed, for any spider (counted, fetch_failed sent)
        "crawler.middlewares.failures.FetchFailureMiddleware": 10,
        # hosts under reserved names fail at once, before the safety check (60)
        "crawler.middlewares.reservednames.ReservedNamesMiddleware": 55,
        # non-HTTP schemes and non-public targets are refused before connecting
        "crawler.middlewares.targets.PrivateTargetMiddleware": 60,
        # robots.txt: ours replaces Scrapy's at the same place
        "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
        "crawler.middlewares.robots.RobotsTxtMiddleware": 100,
        # HTTP or browser, per request (after Retry at 550)
        "crawler.middlewares.render.RenderMiddleware": 560,
        # conditional requests and min_age skips (fetch_state)
        "crawler.middlewares.conditional.ConditionalRequestMiddleware": 570,
        # 429/503 pauses and the circuit breaker, after Retry and conditional
        "crawler.middlewares.retryafter.RetryAfterMiddleware": 575,
        "crawler.middlewares.circuitbreaker.CircuitBreakerMiddleware": 585,
        # strict decompression: ours replaces Scrapy's at the same place
        "scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware": None,
        "crawler.middlewares.compression.StrictHttpCompressionMiddleware": 590,
    },
    "SPIDER_MIDDLEWARES": {
        # the durable frontier: start() seeds a job once (not again on resume, not per worker)
        "crawler.frontier.startguard.FrontierStartMiddleware": 5,
    },
    "ITEM_PIPELINES": {
        "crawler.pipelines.clean.CleanPipeline": 100,
        "crawler.pipelines.validate.ValidatePipeline": 200,
        "crawler.pipelines.dedupe.DedupePipeline": 300,
        "crawler.pipelines.sqlite.SQLitePipeline": 400,
        "crawler.pipelines.csv_file.CsvPipeline": 500,
        # FRONTIER=redis with REDIS_ITEMS: items to the job's Redis stream (SQLite and CSV off)
        "crawler.pipelines.redis_items.RedisItemsPipeline": 450,
    },
    "EXTENSIONS": {
        # secret values out of every log line, from the first one
        "crawler.safety.logfilter.SecretLogFilter": -20,
        # JOBDIRs others could write to are refused before anything is unpickled
        "crawler.safety.jobdir.JobDirGuard": -10,
        # field coverage of the items, published at close before the health monitor reads it
        "crawler.extensions.coverage.FieldCoverage": 40,
        # decides the exit status at close, before the run recorder (100) writes it
        "crawler.extensions.health.HealthMonitor": 50,
        "crawler.extensions.runrecorder.RunRecorder": 100,
        # run_samples rows and the response figures; after the run row exists (100)
        "crawler.extensions.sampler.RunSampler": 110,
        # failed_pages rows and snapshot files of failed pages and rejected items' pages
        "crawler.extensions.snapshots.ErrorSnapshots": 120,
        "crawler.extensions.progress.Progress": 200,
        # the HTML report, after the run row is final and after the summary (REPORT_AT_CLOSE)
        "crawler.extensions.reportwriter.ReportAtClose": 300,
        # alert hooks (command, webhook) with the run summary, after everything else at close
        "crawler.extensions.alerts.AlertHooks": 310,
    },
    # `scrapy check`: @path (a path on the spider's start_url) and an @scrapes that asks for values
    "SPIDER_CONTRACTS": {
        "crawler.contracts.PathContract": 1,
        "scrapy.contracts.default.ScrapesContract": None,
        "crawler.contracts.ScrapesContract": 3,
    },
    # Only http and https are crawled: no handler for local files, data:, FTP or S3 URLs.
    "DOWNLOAD_HANDLERS": {"file": None, "data": None, "ftp": None, "s3": None},
}


def settings_defaults() -> dict[str, Any]:
    """Every plain setting of this module (the component table aside), by name."""
    return {
        name: value
        for name, value in globals().items()
        if name.isupper() and not name.startswith("_") and name != "COMPONENTS"
    }
