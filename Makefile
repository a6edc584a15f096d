# The README's first two commands: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build by default (no GPU here, and a small download); on a GPU machine use e.g.
#   make demo TORCH_SPEC='torch>=2.2,<3'
TORCH_SPEC ?= torch==2.13.0
CONSTRAINTS ?= requirements/ci-constraints.txt
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint install clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q '$(TORCH_SPEC)'
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/orchestrator demo

# What CI runs: lint, formatting, the import layers, then the whole suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check orchestrator trainables tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# The inner loop: lint, the import layers, and the tests that start no Ray, server or training (`slow` marks the
# others; tests/plugin.py keeps the mark exact), property tests at a tenth of their examples, on every core (at
# most 4: each worker imports the whole stack).
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow" --hypothesis-profile=quick -n auto --maxprocesses=4

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check orchestrator trainables tests bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
