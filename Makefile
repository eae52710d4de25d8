.PHONY: install up down secrets lint format test test-fast fuzz bench nginx-conf compose-up compose-down
SHELL := /bin/bash
PY := .venv/bin/python

install:
	bash infra/local/install.sh

up:
	bash infra/local/up.sh

# Redis's password (var/secrets/redis_password), for compose; `make up` makes it too.
secrets:
	bash infra/local/secrets.sh

down:
	bash infra/local/down.sh

# The compose deployment (docker compose or podman-compose, whichever is here): builds the
# images that are missing, starts COMPOSE_PROFILES' services, waits for every healthcheck.
compose-up:
	bash infra/docker/compose-up.sh

compose-down:
	bash infra/docker/compose-down.sh

# Ruff's checks and its formatter's verdict, and mypy (pyproject.toml [tool.ruff], [tool.mypy]);
# make test runs them first. `make format` rewrites the tree in that style.
lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: install
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# The full suite; starts its own Redis, workers, gunicorn and nginx on free ports.
# The suite includes the browser tests, so it installs Debian's chromium too.
test: export KADR_INSTALL_BROWSER=1
test: lint
	$(PY) -m pytest -q

test-fast: export KADR_INSTALL_BROWSER=1
test-fast: lint
	$(PY) -m pytest -q -m "not slow"

# The API fuzzed from its OpenAPI document (Schemathesis) at 20x the suite's budget.
fuzz: install
	KADR_FUZZ_EXAMPLES=500 $(PY) -m pytest -q tests/security/test_fuzz_api.py

# Each writes bench/results/<name>.json; run them one at a time (they time the CPU).
bench: install
	$(PY) -m bench.enhance_overhead
	$(PY) -m bench.segment_speed
	$(PY) -m bench.stabilize_speed
	$(PY) -m bench.camera_buffer

nginx-conf:
	$(PY) infra/nginx/render.py --profile compose --out nginx.conf
