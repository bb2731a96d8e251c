# `make test` and `make demo` work on a fresh machine: they create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install test test-lean quick lint typecheck demo serve bench clean

$(STAMP): pyproject.toml .ci/uv-overrides.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip uv
	$(VENV)/bin/uv pip install --python $(PY) --compile-bytecode --override .ci/uv-overrides.txt \
		-e '.[dev,alibi,tensorflow]'
	touch $(STAMP)

## An install without the alibi and tensorflow extras, and the tests that must pass in it (make test calls it).
LEAN_VENV ?= .venv-lean
LEAN_STAMP := $(LEAN_VENV)/.installed-stamp
LEAN_TESTS := tests/api/test_extras.py tests/explain/test_exact_shap.py tests/explain/test_agreement.py \
	tests/api/test_model_formats.py

$(LEAN_STAMP): pyproject.toml .ci/uv-overrides.txt
	$(PYTHON) -m venv $(LEAN_VENV)
	$(LEAN_VENV)/bin/pip install --quiet --upgrade pip uv
	$(LEAN_VENV)/bin/uv pip install --python $(LEAN_VENV)/bin/python --override .ci/uv-overrides.txt -e '.[dev]'
	touch $(LEAN_STAMP)

test-lean: $(LEAN_STAMP)
	RATIONALE_EXPECT_NO_EXTRAS=1 $(LEAN_VENV)/bin/python -m pytest -q -ra -p no:cacheprovider $(LEAN_TESTS)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check explain audit api storage tests bench rationale
	$(VENV)/bin/ruff format --check explain audit api storage tests bench rationale

typecheck: install
	$(VENV)/bin/mypy

## The whole suite: lint, types, unit and integration tests on SQLite and PostgreSQL, Redis/Celery, browser.
test: install lint typecheck test-lean
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
	$(PY) bench/end_to_end.py

clean:
	rm -rf $(VENV) $(LEAN_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
