# Inkwell — the two commands a newcomer needs are `make run` and `make test`.
# Everything installs into .venv from the pinned, hashed lock files (requirements*.lock).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.DEFAULT_GOAL := help
.PHONY: help run test test-fast lint format typecheck install install-dev lock migrate clean \
	loadtest bench bench-scale

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: requirements.lock pyproject.toml | $(BIN)/python
	$(PIP) install --require-hashes -r requirements.lock
	$(PIP) install --no-deps --no-build-isolation -e . 2>/dev/null || $(PIP) install --no-deps -e .
	@touch $@

$(VENV)/.installed-dev: requirements-dev.lock pyproject.toml | $(BIN)/python
	$(PIP) install --require-hashes -r requirements-dev.lock
	$(PIP) install --no-deps --no-build-isolation -e . 2>/dev/null || $(PIP) install --no-deps -e .
	@touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run ## install the service into .venv
install-dev: $(VENV)/.installed-dev ## install the service and its development tools

run: install ## migrate the embedded SQLite database and serve on 127.0.0.1:8000
	$(BIN)/inkwell serve

migrate: install ## apply migrations to DATABASE_URL
	$(BIN)/inkwell migrate

# The suite spends most of its time waiting on real processes, sockets and databases, so it runs
# in parallel worker processes (each with its own databases), a test file per worker at a time.
TEST_WORKERS ?= 3

test: install-dev lint ## lint, then the whole suite (SQLite, and PostgreSQL + Redis when reachable)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: install-dev ## the suite without the slow real-process fault tests
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

lint: install-dev ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install-dev ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Every pin carries its hashes, and installs refuse anything without a matching one.
LOCK := $(BIN)/pip-compile -q --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
	--no-emit-find-links

lock: install-dev ## re-resolve the lock files (with hashes) from pyproject.toml
	$(LOCK) -o requirements.lock pyproject.toml
	$(LOCK) --extra dev -o requirements-dev.lock pyproject.toml
	$(LOCK) --only-build-deps --build-deps-for wheel -c requirements-dev.lock \
		-o requirements-build.lock pyproject.toml

# make loadtest LOADTEST_USERS=50 LOADTEST_TIME=5m LOADTEST_P95_MS=200
LOADTEST_USERS       ?= 20
LOADTEST_SPAWN_RATE  ?= 5
LOADTEST_TIME        ?= 1m
LOADTEST_P95_MS      ?= 500
LOADTEST_BACKEND     ?= auto
LOADTEST_BCRYPT_ROUNDS ?= 12

loadtest: install-dev ## Locust against a local server; fails on any error or p95 > LOADTEST_P95_MS
	$(BIN)/python loadtests/run.py --users $(LOADTEST_USERS) --spawn-rate $(LOADTEST_SPAWN_RATE) \
		--time $(LOADTEST_TIME) --p95-ms $(LOADTEST_P95_MS) --backend $(LOADTEST_BACKEND) \
		--bcrypt-rounds $(LOADTEST_BCRYPT_ROUNDS)

# make bench BENCH_DURATION=10 BENCH_CONNECTIONS=64 BENCH_ROUNDS=3
BENCH_DURATION    ?= 10
BENCH_CONNECTIONS ?= 64
BENCH_ROUNDS      ?= 3

bench: install-dev ## Inkwell against bare FastAPI and bcrypt (needs PostgreSQL + Redis); var/bench.json
	$(BIN)/python loadtests/bench.py --duration $(BENCH_DURATION) \
		--connections $(BENCH_CONNECTIONS) --rounds $(BENCH_ROUNDS)

# make bench-scale BENCH_SCALE_SIZES=10000,1000000 BENCH_SCALE_BACKEND=both
BENCH_SCALE_SIZES   ?= 10000,1000000
BENCH_SCALE_USERS   ?= 100000
BENCH_SCALE_BACKEND ?= both

bench-scale: install-dev ## read costs at 10k and 1M items, with their query plans; var/bench-scale.json
	$(BIN)/python loadtests/bench_scale.py --backend $(BENCH_SCALE_BACKEND) \
		--sizes $(BENCH_SCALE_SIZES) --users $(BENCH_SCALE_USERS)

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
