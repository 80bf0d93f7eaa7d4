# One virtual environment at .venv serves `make demo`, `make test` and `make bench`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint format services clean bench

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-infra.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -r requirements-infra.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

## Start the product on its embedded defaults: a seeded moto estate, SQLite, in-memory cache.
demo: setup
	$(PY) -m services.demo

## Everything the CI runs: services, lint, the whole test suite.
test: setup services
	$(PY) -m ruff check .
	$(PY) -m pytest

## Benchmarks (not part of `make test`): speed, API economy, latency under load, memory (< 15 min).
bench: setup services
	$(PY) -m bench

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .

## PostgreSQL and Redis on 127.0.0.1 (started, or installed from Debian's packages, when missing).
services:
	@.ci/services.sh

clean:
	rm -rf $(VENV) .data cdk.out
