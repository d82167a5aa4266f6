# The two commands a new user needs: `make run` and `make test`. Both are idempotent.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1:8000

.PHONY: install run test test-fast lint bench evaluate db-status db-stop

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

# Reinstall only when the dependency list changes. The bench extra (faiss, matplotlib) comes too:
# the suite smoke-runs every benchmark so they never rot. torch and torchvision come from the
# registry as a matched pair (never the machine-local CPU torch file).
$(STAMP): pyproject.toml Makefile | $(PY)
	$(PY) -m pip install --quiet --progress-bar off -e ".[dev,bench]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py loaddemo
	$(PY) manage.py runserver $(HOST)

test: install
	bash scripts/ensure-chromium
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow and not e2e"

# Benchmarks (faiss and matplotlib come from the `bench` extra); rewrites docs/benchmarks.md.
bench: install
	$(PY) bench/run_all.py

# Retrieval quality on the demo data against fixtures/golden/demo.jsonl.
evaluate: install
	$(PY) manage.py evaluate

lint: install
	$(PY) -m ruff check .

db-status: install
	$(PY) manage.py dbserver status

db-stop: install
	$(PY) manage.py dbserver stop
