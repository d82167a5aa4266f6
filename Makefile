# The two commands a new user needs: `make run` and `make test`. Both are idempotent.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1:8000

.PHONY: install run serve worker test test-fast lint bench evaluate db-status db-stop

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

# The development server and a background job worker, stopped together by Ctrl-C.
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py loaddemo
	$(PY) manage.py serve --dev --bind $(HOST)

# Production: gunicorn (SEARCH_WEB_WORKERS) and job workers (SEARCH_JOB_WORKERS), static files collected,
# settings from the environment (DJANGO_PRODUCTION=1 unless set: see README, "Deploying").
serve: install
	DJANGO_PRODUCTION=$${DJANGO_PRODUCTION:-1} $(PY) manage.py migrate --noinput
	DJANGO_PRODUCTION=$${DJANGO_PRODUCTION:-1} $(PY) manage.py serve --bind $(HOST)

# One more background worker (on another machine, say); `run` and `serve` start their own.
worker: install
	$(PY) manage.py worker

# The layering contract first (pyproject: [tool.importlinter]): a lower layer importing a higher one fails the run.
test: install
	bash scripts/ensure-test-tools
	$(VENV)/bin/lint-imports
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
	$(VENV)/bin/lint-imports

db-status: install
	$(PY) manage.py dbserver status

db-stop: install
	$(PY) manage.py dbserver stop
