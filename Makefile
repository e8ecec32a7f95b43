# tabard — developer entry points. Everything a fresh machine needs is installed from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start the whole platform on SQLite with the demo scene under ./.tabard/demo (tabard dev --demo).
run: venv
	$(BIN)/tabard dev --demo --data-dir .tabard/demo --ready-file .tabard/demo/ready.json

## Lint, type-check, check the import contract, then run every test (two workers, a test
## file per worker at a time, so module fixtures are shared).
test: venv lint
	bash scripts/test-setup.sh
	$(BIN)/pytest -q -n 2 --dist loadfile

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## Measure the performance budgets; writes each suite's section of bench/RESULTS.md.
bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .tabard .pytest_cache .mypy_cache .ruff_cache tests/interop/node_modules
