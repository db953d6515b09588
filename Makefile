# pactledger — `make demo` runs the ledger end to end on SQLite; `make test` runs every check.
# Each target creates its own virtualenv (.venv) and installs the project into it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)  ## the whole mission end to end on SQLite (about a minute on 2 cores)
	$(BIN)/pactledger demo

lint: $(STAMP)  ## ruff, mypy --strict and the import-linter layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint  ## lint, then the whole test suite (PostgreSQL tests skip unless CI=true)
	$(BIN)/python -m pytest -n 2 --durations=10

unit: $(STAMP)  ## the pure core only: no database needed
	$(BIN)/python -m pytest tests/unit tests/property -q

bench: $(STAMP)  ## ingest (vs COPY), decisions/s, the HTTP API (vs eventsourcing), projectors (vs ingest)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m benchmarks.ingest
	$(BIN)/python -m benchmarks.decisions
	$(BIN)/python -m benchmarks.api
	$(BIN)/python -m benchmarks.projectors

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache .hypothesis
