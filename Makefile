# The README's two commands are `make demo` and `make test`; both do their own set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck bench clean

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

## Benchmarks (not part of the test run); figures go to docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python bench/executor_efficiency.py --write-docs
	$(BIN)/python bench/simulator_throughput.py --write-docs
	$(BIN)/python bench/service_capacity.py --write-docs
	$(BIN)/python bench/analysis_scale.py --write-docs
	$(BIN)/python bench/report_scale.py --write-docs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
