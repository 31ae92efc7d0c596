# Set-up and checks. Each target creates the virtual environment it needs.
#   make demo   - the main job on the embedded PostgreSQL (real model, offline)
#   make test   - lint, type check and the whole test suite against a real PostgreSQL

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: venv demo test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: this takes the CPU wheel; an unpinned torch pulls GBs of CUDA wheels.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m vectorstore.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check $(wildcard vectorstore tests migrations benchmarks examples)
	$(VENV)/bin/ruff format --check vectorstore

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest

test: lint typecheck pytest

bench: $(STAMP)
	for b in bench_ingest bench_stream bench_parquet_ingest bench_search bench_recall_real bench_load; do $(PY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info
