# Reelay: the index of what one can do. Every target installs what it needs first.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST := $(PY) -m pytest
CDK := node_modules/.bin/cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1

.PHONY: help bootstrap up test test-unit test-integration test-infra test-e2e lint format synth deploy bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

bootstrap: ## install Debian packages, the virtualenv and the pinned CDK CLI (idempotent)
	@scripts/bootstrap.sh

up: bootstrap ## run the whole platform on this machine, in the foreground (Ctrl-C stops it)
	$(PY) -m local

test: bootstrap ## run every test suite, on two workers (a test file stays on one worker: its fixtures are shared)
	$(PYTEST) -n 2 --dist loadfile tests/unit tests/integration tests/infra tests/e2e

test-unit: bootstrap ## domain logic with fakes, network blocked
	$(PYTEST) tests/unit

test-integration: bootstrap ## adapters against real MariaDB, real GStreamer and moto
	$(PYTEST) tests/integration

test-infra: bootstrap ## CDK Template assertions and cdk-nag
	$(PYTEST) tests/infra

test-e2e: bootstrap ## the one-machine platform, driven over HTTP
	$(PYTEST) tests/e2e

lint: bootstrap ## ruff and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy reelay lambdas transcoder reelay_cli infra

format: bootstrap
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

synth: bootstrap ## synthesize every stack offline, with cdk-nag
	PATH=$(CURDIR)/.venv/bin:$$PATH $(CDK) synth --quiet $(CDK_ARGS)

deploy: bootstrap ## deploy every stack to the account in your AWS credentials
	PATH=$(CURDIR)/.venv/bin:$$PATH $(CDK) deploy --all --require-approval broadening $(CDK_ARGS)

bench: bootstrap ## benchmarks as ratios against peers in the same run; BENCH="ladder --seconds 20" picks
	$(PY) -m tests.bench $(BENCH)

clean:
	rm -rf cdk.out .build .pytest_cache
