# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DEMO_DIR ?= demo
STAMP := $(VENV)/.installed

.PHONY: demo test lint types unit install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make demo: simulate the built-in lab book, validate it, run the playbook on it and write the report.
demo: $(STAMP)
	$(BIN)/nextmove simulate --out $(DEMO_DIR)/book --accounts 4200 --months 18 --seed 0 --force
	$(BIN)/nextmove validate --book $(DEMO_DIR)/book
	$(BIN)/nextmove run --book $(DEMO_DIR)/book --out $(DEMO_DIR)/run --store sqlite:///$(DEMO_DIR)/nextmove.db
	@echo "Outputs: $(DEMO_DIR)/run (recommendations.csv, recommendations.parquet, summary.json, report.html)"

## make test: lint, types, architecture contract, and the whole test suite.
test: lint types unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -n 2 -q

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
