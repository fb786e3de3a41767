# Patuh: two commands do all set-up on a fresh Debian machine with Python 3.11.
#   make demo   demo data -> data/patuh.duckdb, compliance run, report, dashboard on :8050
#   make test   ruff, mypy --strict pipeline/ (and mypy dashboards/), import contract, pytest
SHELL := /bin/bash
PY ?= python3
VENV := .venv
TOOLS := .tools
# uv lives in its own small venv: `uv sync` removes every package the lock does not name from .venv,
# uv itself included
UV := $(TOOLS)/bin/uv
RUN := $(UV) run --frozen --no-sync
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_COMPILE_BYTECODE := 1
export PM4PY_SHOW_PROGRESS_BAR := False
# cached bytecode: importing pm4py without it costs 5-25 s per process
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test lint typecheck contracts pytest bench clean browser-deps

$(UV):
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --disable-pip-version-check "uv>=0.4"

$(VENV)/.synced-main: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --no-dev -q
	touch $@

$(VENV)/.synced-dev: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra dev -q
	touch $@ $(VENV)/.synced-main

demo: $(VENV)/.synced-main
	$(RUN) patuh demo $(ARGS)

lint: $(VENV)/.synced-dev
	$(RUN) ruff check pipeline dashboards tests bench

typecheck: $(VENV)/.synced-dev
	$(RUN) mypy --strict pipeline
	$(RUN) mypy dashboards

contracts: $(VENV)/.synced-dev
	$(RUN) lint-imports

pytest: $(VENV)/.synced-dev browser-deps
	$(RUN) pytest $(PYTEST_ARGS)

test: lint typecheck contracts pytest

browser-deps:
	@bash tests/install_browser.sh

bench: $(VENV)/.synced-dev
	$(RUN) python -m bench.run $(if $(QUICK),--quick,) $(if $(SIZES),--sizes $(SIZES),)

clean:
	rm -rf $(VENV) $(TOOLS) data/patuh.duckdb data/published data/demo
