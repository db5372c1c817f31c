# Two commands do all set-up on a fresh machine:
#   make run    create .venv, install ramparts, run `ramparts start` in the foreground
#   make test   create/update .venv with the test extras, install the Debian packages the
#               tests drive (only when missing), then lint, type-check and run pytest
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
CONF   ?=
DEBIAN_TEST_PACKAGES := curl openssl sslscan docker-compose procps

.PHONY: run test lint typecheck pytest deps clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml gateway/tls/_tickets.c | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml gateway/tls/_tickets.c | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/ramparts start $(if $(CONF),-c $(CONF))

deps:
	@missing=""; for p in $(DEBIAN_TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check gateway admin migrations tests

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# one pytest worker per core (pytest-xdist; worksteal: the long e2e tests do not end up queued
# behind one worker). Each worker makes its own PostgreSQL database and temporary tree; every
# test takes its own ports. PYTEST_ARGS replaces this (e.g. "-k certificates": one process).
PYTEST_ARGS ?= -n auto --dist worksteal
pytest: $(VENV)/.installed-test deps
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# Benchmark next to nginx (and the naive uvicorn+aiohttp proxy) in one run, with the shared
# harness (root, Debian: it installs nginx, wrk, ...). Not part of `make test`.
BENCH_DIR ?= ../shared/bench
BENCH_OUT ?= bench/results/$(shell date +%Y%m%d-%H%M%S)
BENCH_PROXIES ?= nginx pyref leanref
BENCH_SCENARIOS ?= a b b_rsa b_resume c d
BENCH_EXTRA ?= keepalive mtls routes plugins workers idle groups
bench: $(VENV)/.installed-run
	@test -x $(BENCH_DIR)/run.sh || { echo "bench harness not found at $(BENCH_DIR)"; exit 1; }
	PROXIES="$(BENCH_PROXIES)" SCENARIOS="$(BENCH_SCENARIOS)" GATEWAY_NAME=ramparts \
	  GATEWAY_CMD="exec $(CURDIR)/bench/gateway.sh" GATEWAY_SETUP_CMD="$(CURDIR)/bench/setup.sh" \
	  OUT=$(CURDIR)/$(BENCH_OUT) bash $(BENCH_DIR)/run.sh
	BENCH_DIR=$(BENCH_DIR) SCENARIOS="$(BENCH_EXTRA)" $(BIN)/python bench/extra.py $(BENCH_OUT)
	$(BIN)/python bench/reload.py $(BENCH_OUT)/reload.md
	$(BIN)/python bench/declarative.py $(BENCH_OUT)/declarative.md
	$(BIN)/python bench/tickets.py $(BENCH_OUT)/tickets.md
	$(BIN)/python bench/publish.py $(BENCH_OUT) docs/benchmarks.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
