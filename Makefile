# Set-up and checks. Each target creates the virtual environment it needs.
#   make demo   - the main job on the embedded PostgreSQL (real model, offline)
#   make test   - lint, type check, import contracts, the docs site and the whole test suite (CI)
#   make docs   - build the documentation site (mkdocs build --strict) into build/site
#   make test-fast - the same checks and the suite without fault, load, replication,
#                    model, slow, browser and spark tests (the developer's loop)
#   make test-explore - the property tests with random examples, many more of them

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: venv demo test test-fast test-explore test-partitioned lint typecheck contracts pytest docs bench clean

# torch first, pinned to its CPU build: an unpinned torch on Linux pulls GBs of CUDA wheels.
# TORCH_INDEX_URL: PyTorch's CPU wheel index (README "Installation"), where pip's own
# configuration does not already provide the CPU wheel of this version.
TORCH ?= torch==2.13.0
TORCH_INDEX_URL ?=
PIP_PROGRESS := --progress-bar on --no-color

$(STAMP): pyproject.toml
	@echo "== 1/3 creating $(VENV) and upgrading pip"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "== 2/3 installing $(TORCH) (the CPU build, about 200 MB; the longest step)"
	$(PY) -m pip install $(PIP_PROGRESS) $(TORCH) $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	@echo "== 3/3 installing vectorstore and its extras (-e .[all])"
	$(PY) -m pip install $(PIP_PROGRESS) -e ".[all]"
	touch $(STAMP)
	@echo "== the environment is ready: $(VENV)"

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

# The documentation site (mkdocs.yml): every page and API reference builds, no warnings.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir build/site

test: lint typecheck contracts docs pytest

FAST_MARKERS = not faults and not load and not replication and not model and not slow and not browser and not spark
test-fast: lint typecheck contracts
	$(PY) -m pytest -m "$(FAST_MARKERS)"

# The repository, search, bulk_add and filter suites against a partitioned
# vectorstore_documents (tenants as partitions: tests/_layouts.py).
test-partitioned: $(STAMP)
	VECTORSTORE_TEST_LAYOUT=partitioned $(PY) -m pytest tests/test_repository.py \
		tests/test_search.py tests/test_bulk_add.py tests/test_filters.py \
		tests/test_partitions.py tests/test_rls.py

test-explore: $(STAMP)
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest tests/test_properties.py

bench: $(STAMP)
	for b in bench_ingest bench_stream bench_parquet_ingest bench_search bench_recall_real bench_load; do $(PY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info
