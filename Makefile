# `make test` and `make demo` work on a fresh machine: they create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install test quick lint typecheck demo serve bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip uv
	$(VENV)/bin/uv pip install --python $(PY) --compile-bytecode -e '.[dev,tensorflow]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check explain audit api storage tests bench rationale
	$(VENV)/bin/ruff format --check explain audit api storage tests bench rationale

typecheck: install
	$(VENV)/bin/mypy

## The whole suite: lint, types, unit and integration tests on SQLite and PostgreSQL, Redis/Celery, browser.
test: install lint typecheck
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

## The quick loop: everything but the tests marked heavy.
quick: install
	$(PY) -m pytest -q -m "not heavy" $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/rationale demo

serve: install
	$(VENV)/bin/rationale db upgrade
	$(VENV)/bin/rationale serve

bench: install
	$(PY) bench/explainers.py
	$(PY) bench/ledger.py
	$(PY) bench/throughput.py
	$(PY) bench/export.py
	$(PY) bench/lookup.py
	$(PY) bench/analytics.py
	$(PY) bench/intake.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
