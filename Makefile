# nightscore: the few commands a person types. Everything installs from pyproject.toml + uv.lock.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_BOOT := .nightscore/tools/bin/uv
UV := $(or $(shell command -v uv 2>/dev/null),$(UV_BOOT))
export UV_COMPILE_BYTECODE := 1
export UV_PYTHON_DOWNLOADS := never
# the first Python 3.11-3.13 on the machine (python3 first), or PYTHON=/path/to/python
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	  v=$$(command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; print(sys.version_info[:2] >= (3, 11) and sys.version_info[:2] < (3, 14))' 2>/dev/null); \
	  if [ "$$v" = True ]; then command -v $$p; break; fi; done)
PYTEST_ARGS ?=
ROWS ?=

.PHONY: help install run test test-unit lint airflow bench bench-beside bench-predict load docs stop clean compose-secrets

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(UV_BOOT):
	@echo "uv not found: installing it into .nightscore/tools"
	"$(PYTHON)" -m venv .nightscore/tools
	.nightscore/tools/bin/python -m pip install --quiet uv

# the interpreter behind $(PYTHON) (a pyenv shim or a symlink resolved to the binary it runs) and its version:
# uv keeps a .venv made from the same interpreter; handed the shim, it saw another one and rebuilt .venv each time
PYTHON_REAL = $(shell "$(PYTHON)" -c 'import os, sys; print(os.path.realpath(sys.executable))' 2>/dev/null)
PYTHON_VERSION = $(shell "$(PYTHON)" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV_VERSION = $(shell [ -x .venv/bin/python ] && .venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)

install: $(UV)  ## create .venv from the lock file, or bring it up to date (the first Python 3.11-3.13 found, or PYTHON=...)
	@if [ -z "$(PYTHON)" ]; then echo "no Python 3.11, 3.12 or 3.13 found: install one, or run make PYTHON=/path/to/python3.x"; exit 1; fi
	@if [ -n "$(VENV_VERSION)" ] && [ "$(VENV_VERSION)" = "$(PYTHON_VERSION)" ]; then \
	  $(UV) sync --frozen --python .venv/bin/python; \
	else \
	  $(UV) sync --frozen --python "$(PYTHON_REAL)"; \
	fi

run: install  ## set up the embedded defaults and score the latest complete day of the three demo jobs (churn, basket_value, plan_choice)
	$(UV) run --frozen nightscore quickstart

test: install  ## the whole test suite on a real PostgreSQL (started by the tests if none is given), with Debian's Chromium for the browser tests
	@tools/ensure_browser.sh
	$(UV) run --frozen pytest $(PYTEST_ARGS)

test-unit: install  ## the pure tests only (marker unit: no server, no browser), in under a minute
	$(UV) run --frozen pytest -m unit $(PYTEST_ARGS)

airflow: install  ## Airflow 3 on the embedded defaults: demo data, the demo jobs' models, then airflow standalone (URL and login printed)
	$(UV) run --frozen nightscore quickstart
	$(UV) run --frozen python tools/airflow_local.py

bench: install  ## nightscore against the pandas recipe at 100k/1M/5M rows (ROWS=N for one size, JSON=FILE keeps the results); not part of make test
	$(UV) run --frozen python bench/run_bench.py $(if $(ROWS),--rows $(ROWS),) $(if $(JSON),--json $(JSON),)

bench-beside: install  ## results of several machines side by side: FILES="this.json that.json" (each from make bench's --json)
	$(UV) run --frozen python bench/beside.py $(FILES)

bench-predict: install  ## XGBoost's predict by threads and batch sizes beside Treelite's GTIL and a TL2cgen-compiled model (after make bench; ROWS=N)
	$(UV) run --frozen --with treelite==4.8.1 --with tl2cgen==1.0.0 python bench/predict_study.py $(if $(ROWS),--rows $(ROWS),)

load: install  ## 4 jobs x 30 days of backfill at once with 16 readers, then checks (embedded or NIGHTSCORE_DATABASE_URL's server; LOAD_ARGS="--mode airflow" on the Celery deployment, "--mode both"); not part of make test
	$(UV) run --frozen python bench/load.py $(LOAD_ARGS)

docs: install  ## the documentation site (docs/, MkDocs Material) into .nightscore/site, checked --strict; the job spec's key table first
	$(UV) run --frozen python tools/spec_reference.py
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen mkdocs build --strict
	@echo "open .nightscore/site/index.html, or: $(UV) run --frozen mkdocs serve"

lint: install  ## ruff and mypy
	$(UV) run --frozen ruff check pipeline nightscore_airflow dags tests tools bench docker
	$(UV) run --frozen mypy pipeline nightscore_airflow

compose-secrets:  ## docker compose: random secrets in secrets/ (kept once made) and AIRFLOW_UID in .env
	@"$(or $(PYTHON),python3)" tools/compose_secrets.py

stop:  ## stop the embedded PostgreSQL (nothing to do before the first make run)
	@if [ -x .venv/bin/nightscore ]; then .venv/bin/nightscore stop; else echo "no .venv yet: no embedded PostgreSQL to stop"; fi

clean: stop  ## delete what make run made: .nightscore/ (database, artifacts, Airflow home, logs, uv) and .venv/
	rm -rf .nightscore .venv
