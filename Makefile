# Verbs a user types. `make run` and `make test` work on a fresh clone: they create .venv with a
# Python >= 3.12 (found on PATH first, then under pyenv), install the project, and run.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= ../shared/data/marketing_campaign.csv
OUT ?= runs/main

# First interpreter that really runs and is >= 3.12 (3.12 preferred: the tested stack): PATH, then pyenv.
define FIND_PYTHON
ok() { "$$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }; \
for p in python3.12 python3 python3.13 python; do \
  command -v "$$p" >/dev/null 2>&1 && ok "$$p" && { command -v "$$p"; exit 0; }; \
done; \
root=$$(pyenv root 2>/dev/null || echo "$$HOME/.pyenv"); \
for p in $$(ls -d "$$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do \
  ok "$$p" && { echo "$$p"; exit 0; }; \
done
endef

.PHONY: run test test-unit test-slow lint format bench clean help

help:
	@echo "make run    - set up .venv and run the main job on the embedded default data"
	@echo "make test   - set up .venv and run the test suite (slow tests: make test-slow)"
	@echo "make test-unit - the unit tier: every test that does not sample"

$(STAMP): pyproject.toml
	@py="$$( $(FIND_PYTHON) )"; \
	if [ -z "$$py" ]; then \
	  echo "error: no Python >= 3.12 found on PATH or under pyenv." >&2; \
	  echo "Install one (e.g. 'pyenv install 3.12', 'apt-get install python3.12', or conda) and re-run." >&2; \
	  exit 2; \
	fi; \
	if [ ! -x $(BIN)/python ]; then echo "Creating $(VENV) with $$py"; "$$py" -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/segment run --out $(OUT) --figures-to figures

test: $(STAMP)
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not sampling and not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"  # numpyro, the sweep's JAX peer
	$(BIN)/python -m bench.sweep --quick

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
