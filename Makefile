# Every target creates/updates .venv itself: `make crawl` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: crawl test lint format bench bench-export install system-deps clean

# Debian packages the tests use for real: Chromium (JavaScript rendering).
SYSTEM_DEPS := chromium:chromium redis-server:redis-server

# What a crawl needs: the project and its runtime dependencies (no test tools, no pyarrow).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "crawler needs Python 3.11 or newer: set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $(STAMP)

# What the tests and linters need besides: the dev extra (pytest, ruff, mypy, Scrapyd, pyarrow).
$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(DEV_STAMP)

install: $(STAMP)

## crawl: serve the bundled demo shop on 127.0.0.1 and crawl it into data/crawler.sqlite + CSV
crawl: $(STAMP)
	$(PY) -m crawler.demo crawl

## system-deps: install missing Debian packages with apt (as root); quiet when all are present
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
	  command -v $${dep%%:*} >/dev/null 2>&1 || missing="$$missing $${dep#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing:$$missing; install them with: sudo apt-get install -y$$missing" >&2; exit 1; fi; \
	  echo "installing$$missing with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	fi

## test: the whole suite (real crawls on 127.0.0.1) on TEST_WORKERS processes, then ruff and mypy
# Most of the suite waits on sockets, timers and a browser: 3 workers keep 2 cores busy.
TEST_WORKERS ?= 3
test: $(DEV_STAMP) system-deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup
	$(MAKE) --no-print-directory lint

## bench: our crawler against Pool+urlopen, threads+requests, grequests, aiohttp and stock Scrapy
## (BENCH=quick for a < 3 minute run); writes bench/results/latest.md and the charts
BENCH ?= full
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(DEV_STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@command -v nginx >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; } || \
	  echo "nginx missing: the bench falls back to a Python static server (install nginx for fair figures)"
	$(PY) -m bench.run --mode $(BENCH)

## bench-export: export throughput and peak RSS for 100k and 1M rows (CSV, JSONL, Parquet)
bench-export: $(DEV_STAMP)
	$(PY) bench/export_bench.py --rows 100000 --rows 1000000

lint: $(DEV_STAMP)
	$(PY) -m ruff check crawler tests bench
	$(PY) -m ruff format --check crawler tests bench
	$(PY) -m mypy

format: $(DEV_STAMP)
	$(PY) -m ruff check --fix crawler tests
	$(PY) -m ruff format crawler tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data
