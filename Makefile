# The README's quick start lives here: `make run` and `make test` work on a fresh clone with
# nothing but Python 3.11+ and make. The virtualenv and its requirements are handled by
# scripts/venv.sh, which skips pip when the requirements files have not changed.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
# Extra arguments: make test ARGS="tests/incidents -x", make bench ARGS="--server gunicorn-sync"
ARGS ?=
export VENV HOST PORT

PY := $(VENV)/bin/python

.PHONY: help run test bench check venv venv-dev

help:
	@echo "make run     create .venv, migrate, seed demo data, serve http://$(HOST):$(PORT)/ with a task worker"
	@echo "make test    create/update .venv with the dev requirements and run the whole test suite"
	@echo "make bench   read-path benchmark (production server, / and the v2 summary vs /healthz)"
	@echo "make check   makemigrations --check and check --deploy with production-like settings"

venv:
	@bash scripts/venv.sh runtime

venv-dev:
	@bash scripts/venv.sh dev

run: venv
	@bash scripts/run_dev.sh

test: venv-dev
	$(PY) -m pytest $(ARGS)

bench: venv-dev
	$(PY) bench/read_path $(ARGS)

check: venv
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run
	DEBUG=0 SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	ALLOWED_HOSTS=status.example.com SITE_URL=https://status.example.com \
	$(PY) manage.py check --deploy --fail-level WARNING
