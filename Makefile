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

bench: $(STAMP)  ## every benchmark beside its peer at 1M entries (~30 min): bench-out/ (JSON, markdown, PNG)
	$(BIN)/python -m benchmarks --scale $(or $(SCALE),1m) --json bench-out/bench.json

clean:
	rm -rf $(VENV) demo-out bench-out .pytest_cache .mypy_cache .ruff_cache .hypothesis
