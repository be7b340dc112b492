# DR Portal. Two commands on a fresh machine with Python 3.11: `make run`, `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-quick lint format install setup clean-var

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Each step skips the system checks: `serve` runs them once, and its summary (printed last)
# carries the admin password and the key-escrow warning.
setup: install
	$(PY) manage.py migrate --no-input --verbosity 0 --skip-checks
	$(PY) manage.py createcachetable
	$(PY) manage.py ensure_admin --first-start --skip-checks
	DR_OUTBOUND_ALLOW="$${DR_OUTBOUND_ALLOW-127.0.0.1}" $(PY) manage.py load_demo --skip-checks
	$(PY) manage.py collectstatic --no-input --verbosity 0 --skip-checks

# The demo runbook's HTTP checks call the portal on loopback: `make run` allows it unless
# DR_OUTBOUND_ALLOW says otherwise. A deployment leaves it empty (SECURITY.md, outbound).
run: setup
	DR_OUTBOUND_ALLOW="$${DR_OUTBOUND_ALLOW-127.0.0.1}" $(PY) manage.py serve

test: install
	bash .ci/test-deps
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

test-quick: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
