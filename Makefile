# Skiff: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
PYTEST_ARGS ?=

.PHONY: help deps test-deps docker venv stack test unit lint install demo demo-cluster demo-cluster-clean bench clean

help:
	@echo "make demo     install everything and deploy examples/catmeow by git push"
	@echo "make test     lint, install what the tests need and run the whole suite"
	@echo "make install  install skiff on this server (root)"
	@echo "make demo-cluster        three engines as a swarm on this machine, a registry, catmeow web=3 on them"
	@echo "make demo-cluster-clean  remove all of it"
	@echo "make bench    run the benchmarks under bench/"
	@echo "make lint     ruff check, ruff format --check and mypy (make test runs it first)"

deps:
	@scripts/system-deps.sh

# what only the tests need on top (pebble for the letsencrypt end-to-end tests, chromium and
# chromium-driver for the dashboard's browser tests)
test-deps:
	@scripts/system-deps.sh --test

docker: deps
	@scripts/ensure-docker.sh

# the tests' Python packages: moto's S3 server and boto3 (the services' s3 extra) for the backup tests,
# httpx2 for Starlette's test client (the dashboard's unit tests), selenium for the browser tests
# (skiff.testing.browser drives Debian's chromium, test-deps)
venv:
	@scripts/venv.sh $(VENV) editable pytest ruff mypy "moto[server]" boto3 httpx2 selenium

unit: venv
	$(VENV)/bin/python -m pytest -q -m "not e2e" $(PYTEST_ARGS)

# Settings in pyproject.toml ([tool.ruff], [tool.mypy]: strict for core/skiff). Runs all three
# and fails if any of them found something; `make test` runs it first (a few seconds) and stops
# on a finding (tests/core/test_lint_config.py checks the dependency).
LINT_PATHS ?= core plugins tests bench examples
MYPY_PATHS ?= core/skiff $(patsubst %/__init__.py,%,$(wildcard plugins/*/*/skiff_*/__init__.py))

lint: venv
	@rc=0; \
	echo "-----> ruff check"; $(VENV)/bin/ruff check $(LINT_PATHS) || rc=1; \
	echo "-----> ruff format --check"; $(VENV)/bin/ruff format --check $(LINT_PATHS) || rc=1; \
	echo "-----> mypy"; $(VENV)/bin/mypy $(MYPY_PATHS) || rc=1; \
	exit $$rc

# The stack image is a docker image, not state: build it with a throwaway SKIFF_ROOT so that
# running this as root never touches a server's /var/lib/skiff.
stack: docker venv
	@root=$$(mktemp -d) && SKIFF_ROOT=$$root $(VENV)/bin/skiff stack:build; rc=$$?; rm -rf $$root; exit $$rc

# lint right after the Debian packages (python3-venv), before the engine and the stack image
test: deps test-deps lint docker venv stack
	SKIFF_TEST_RESTART_ENGINE=1 $(VENV)/bin/python -m pytest -q --durations=30 $(PYTEST_ARGS)

bench: docker venv
	$(VENV)/bin/python bench/run.py $(BENCH)

install:
	@scripts/install.sh

demo:
	@scripts/demo.sh

# the cluster's nodes need iproute2 and util-linux (test-deps), its registry docker-registry (deps)
demo-cluster: deps test-deps
	@scripts/demo-cluster.sh

demo-cluster-clean:
	@scripts/demo-cluster.sh --clean

clean:
	rm -rf $(VENV) build *.egg-info
