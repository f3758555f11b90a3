# Two commands do all the set-up on a fresh machine with Python 3.11+ and make:
#   make demo   — create .venv, install, run the demo enrichment (SQLite, ephemeral Prefect, no API key)
#   make test   — create .venv, install, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test lint bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/airlock demo

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src flows tasks tools expectations systems tests bench data
	$(BIN)/mypy src flows tasks tools expectations systems
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/throughput.py --records 10000 100000

clean:
	rm -rf $(VENV) .airlock .pytest_cache .mypy_cache .ruff_cache
