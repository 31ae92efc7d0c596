# Set-up and checks. Each target creates the virtual environment it needs.
#   make demo   - the main job on the embedded PostgreSQL (real model, offline)
#   make test   - lint, type check, import contracts and the whole test suite (what CI runs)
#   make test-fast - the same checks and the suite without fault, load, replication,
#                    model, slow and browser tests (the developer's loop)
#   make test-explore - the property tests with random examples, many more of them

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: venv demo test test-fast test-explore lint typecheck contracts pytest bench clean

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

# The layering of the package (pyproject.toml [tool.importlinter]).
contracts: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache

pytest: $(STAMP)
	$(PY) -m pytest

test: lint typecheck contracts pytest

FAST_MARKERS = not faults and not load and not replication and not model and not slow and not browser
test-fast: lint typecheck contracts
	$(PY) -m pytest -m "$(FAST_MARKERS)"

test-explore: $(STAMP)
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest tests/test_properties.py

bench: $(STAMP)
	for b in bench_ingest bench_stream bench_parquet_ingest bench_search bench_recall_real bench_load; do $(PY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info
