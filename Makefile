# Two set-up commands on a fresh machine with python3.11 and make: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PULSE_HOME ?= $(CURDIR)/.data
DBT_SOURCES := $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null) \
               dbt_project/dbt_project.yml dbt_project/profiles.yml
MANIFEST := dbt_project/target/manifest.json

BROWSER := tests/browser

.PHONY: install run test lint contract-copies env-example ui mlflow serve collect demo-live bench bench-collector browser-deps clean

install: $(VENV)/.installed $(MANIFEST)

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# Dagster loads the dbt assets from this manifest; build it at install time, not at import.
$(MANIFEST): $(VENV)/.installed $(DBT_SOURCES)
	$(BIN)/pulse prepare

run: install
	$(BIN)/pulse run

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	cd dbt_project && PULSE_WAREHOUSE=$$(mktemp -d)/lint.duckdb ../$(BIN)/sqlfluff lint models tests

# The event contract's copies (docs/event-contract.md's tables, the tracker's event types) from pulse/core/contract.py.
contract-copies: install
	$(BIN)/python -m pulse.cli.contract_copies

# .env.example is written from the settings' declarations (pulse/core/settings.py); a unit test keeps them equal.
env-example: install
	$(BIN)/pulse settings --env-example > .env.example

# Browser tests: Chromium from Debian's package, playwright-core from npm (package-lock.json). Nothing
# downloads a browser.
browser-deps: $(BROWSER)/node_modules/.installed

$(BROWSER)/node_modules/.installed: $(BROWSER)/package.json $(BROWSER)/package-lock.json
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Chromium (Debian package) for the browser tests"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	cd $(BROWSER) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Two workers (pytest-xdist), a test file per worker at a time (module fixtures stay in one process): most
# integration tests wait on process start-ups (Dagster, dbt, the JVM), so two run in about 2/3 of the time.
# Files go out in the order tests/conftest.py sorts them (the slowest first), not xdist's (most tests first).
TEST_WORKERS ?= 2

test: lint browser-deps
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=40

ui: install
	$(BIN)/pulse ui

mlflow: install
	$(BIN)/pulse mlflow

serve: install
	$(BIN)/pulse serve

collect: install
	$(BIN)/pulse collect

# The demo shop's history first (`make run`: nothing to do when it is there), then the live shop beside the UI.
demo-live: run
	$(BIN)/pulse live

bench: install
	$(BIN)/python benchmarks/transform.py --events 1000000
	$(BIN)/python benchmarks/intent.py --users 100000 --snapshots 8

bench-collector: install
	@command -v wrk >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python benchmarks/collector.py

clean:
	rm -rf $(VENV) dbt_project/target dbt_project/logs .pytest_cache .ruff_cache $(BROWSER)/node_modules
