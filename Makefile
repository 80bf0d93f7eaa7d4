# One virtual environment at .venv serves `make demo`, `make test` and `make bench`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CDK_CLI := node_modules/.package-lock.json

.PHONY: setup demo test lint format services clean bench synth lambda-deps cost bundle

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
test: setup services $(CDK_CLI)
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

## The pinned Node.js CLIs (package.json / package-lock.json): the AWS CDK CLI (infrastructure tests,
## `synth`), the MCP Bundle CLI (`bundle`, tests/install) and the MCP Inspector (tests/install).
$(CDK_CLI): package.json package-lock.json
	npm ci --no-audit --no-fund

## The Claude Desktop bundle, validated and packed by the pinned mcpb CLI: build/tag-compliance-mcp-<version>.mcpb.
bundle: setup $(CDK_CLI)
	$(PY) -m operations.bundle

## CloudFormation templates of every environment into cdk.out/<env> (offline, no docker).
synth: setup $(CDK_CLI)
	@for env in dev staging prod; do \
		echo "cdk synth -c env=$$env -> cdk.out/$$env"; \
		JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 npx cdk synth --quiet --no-notices -c env=$$env \
			--app "$(PY) app.py" --output cdk.out/$$env || exit 1; \
	done

# How the dependencies layer is built; tests/rehearsal builds the same layer for the test interpreter.
LAMBDA_DEPS_PIP_FLAGS := --no-warn-conflicts --platform manylinux2014_x86_64 --implementation cp --only-binary=:all:

## Fixed monthly cost of each environment, priced from its synthesized templates (stacks/cost.py).
cost: setup
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 $(PY) -m stacks.cost

## Third-party packages of the Lambdas (the dependencies layer), as Linux x86_64 wheels for python3.12.
lambda-deps: setup
	rm -rf build/lambda-deps
	$(PY) -m pip install --quiet $(LAMBDA_DEPS_PIP_FLAGS) --python-version 3.12 \
		--target build/lambda-deps/python -r requirements.txt

clean:
	rm -rf $(VENV) .data cdk.out build/lambda-deps build/rehearsal
