# nightscore: the few commands a person types. Everything installs from pyproject.toml + uv.lock.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_BOOT := .nightscore/tools/bin/uv
UV := $(or $(shell command -v uv 2>/dev/null),$(UV_BOOT))
export UV_COMPILE_BYTECODE := 1
export UV_PYTHON_DOWNLOADS := never
PYTEST_ARGS ?=
ROWS ?=

.PHONY: help install run test lint airflow bench stop clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(UV_BOOT):
	@echo "uv not found: installing it into .nightscore/tools"
	python3 -m venv .nightscore/tools
	.nightscore/tools/bin/python -m pip install --quiet uv

install: $(UV)  ## create .venv from the lock file (Python 3.11)
	$(UV) sync --frozen --python 3.11

run: install  ## set up the embedded defaults and score yesterday's demo partition
	$(UV) run --frozen nightscore quickstart

test: install  ## the whole test suite on a real PostgreSQL (started by the tests if none is given)
	$(UV) run --frozen pytest $(PYTEST_ARGS)

airflow: install  ## Airflow 3 on the embedded defaults: demo data, model, then airflow standalone (URL and login printed)
	$(UV) run --frozen nightscore quickstart
	$(UV) run --frozen python tools/airflow_local.py

bench: install  ## nightscore against the pandas recipe at 100k/1M/5M rows (ROWS=N for one size); not part of make test
	$(UV) run --frozen python bench/run_bench.py $(if $(ROWS),--rows $(ROWS),)

lint: install  ## ruff and mypy
	$(UV) run --frozen ruff check pipeline dags tests tools bench
	$(UV) run --frozen mypy pipeline

stop:  ## stop the embedded PostgreSQL (nothing to do before the first make run)
	@if [ -x .venv/bin/nightscore ]; then .venv/bin/nightscore stop; else echo "no .venv yet: no embedded PostgreSQL to stop"; fi

clean: stop  ## delete what make run made: .nightscore/ (database, artifacts, Airflow home, logs, uv) and .venv/
	rm -rf .nightscore .venv
