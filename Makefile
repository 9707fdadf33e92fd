# Quick checks before a commit, and the full suite (the README's test command, what .ci/run runs).
# Everything runs from the project's own venv: make install first on a fresh clone.
VENV ?= .venv
BIN := $(VENV)/bin
CODE := segment_pipeline segment_pipeline_tests scripts

.PHONY: install check lint types quick-tests test format

install:
	python3 -m venv $(VENV) && $(BIN)/pip install -q -e '.[dev]'

# Format, lint, types, then the tests not marked slow with the small hypothesis budget (a few minutes).
check: lint types quick-tests

lint:
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/ruff check $(CODE)

types:
	$(BIN)/pyright

quick-tests:
	HYPOTHESIS_PROFILE=dev $(BIN)/pytest -q -m "not slow"

# The whole suite, slow tests and full hypothesis budgets included, on every core (pytest-xdist, addopts).
test:
	$(BIN)/pytest -q

# Rewrite the code in the project's format and apply ruff's safe fixes.
format:
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)
