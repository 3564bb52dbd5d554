# The README's two commands are `make demo` and `make test`; both do their own set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## The main job on the embedded default: simulator + service + Locust, then the report.
demo: $(STAMP)
	$(BIN)/parabench demo

## Every test, after lint and type checks (system packages first: promtool, chromium).
test: $(STAMP)
	bash scripts/setup-system.sh
	$(BIN)/ruff check harness tests bench dashboards
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check harness tests bench dashboards
	$(BIN)/ruff format --check harness tests bench dashboards

typecheck: $(STAMP)
	$(BIN)/mypy

## Benchmarks (not part of the test run): each script in bench/ in turn, each rewriting its
## section of docs/benchmarks.md; a summary at the end (about 20 minutes; the soak is apart).
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

## The 10-minute soak and overload test of the service (bench/soak.py), recorded in docs/benchmarks.md.
soak: $(STAMP)
	$(BIN)/python bench/soak.py --write-docs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
