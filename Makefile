.PHONY: install up down test test-fast bench nginx-conf
SHELL := /bin/bash
PY := .venv/bin/python

install:
	bash infra/local/install.sh

up:
	bash infra/local/up.sh

down:
	bash infra/local/down.sh

# The full suite; starts its own Redis, workers, gunicorn and nginx on free ports.
test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) -m bench.enhance_overhead

nginx-conf:
	$(PY) infra/nginx/render.py --profile compose --out nginx.conf
