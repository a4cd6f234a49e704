# vfcross: two commands do everything on a fresh machine.
#   make reproduce   set up if needed, build the synthetic data, run every notebook, write reports/
#   make test        set up if needed, then pytest, papermill smoke runs and nbval
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Exact versions of everything setup installs (pyproject.toml only gives ranges).
CONSTRAINTS := constraints.txt
# The virtual environment is rebuilt when it is missing or older than these files.
STAMP := $(VENV)/.installed
# facenet-pytorch pins torch<2.3, numpy<2, Pillow<10.3 in its metadata; those
# pins are stale (it runs on the torch of constraints.txt), so it is installed
# without its dependencies, which pyproject.toml provides. Its version comes
# from constraints.txt like every other. --no-cache-dir: the CUDA build of torch is several GB,
# and pip's cache would keep a second copy (a CI run once ran out of disk mid-install).
FACENET := facenet-pytorch
PRESET ?= default
SMOKE_DIR := work/smoke
# The real VoxCeleb1 slice and the official lists, where they lie beside the repository (as in CI).
SLICE := ../shared/data/voxceleb1-mini
LISTS := ../shared/data/voxceleb1-lists
SLICE_DIR := work/slice
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# Tests, notebooks and workers share two cores: keep torch from oversubscribing.
export OMP_NUM_THREADS ?= 2
export PYTHONHASHSEED := 0

.PHONY: setup reproduce test pytest smoke smoke-slice nbval clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "vfcross needs Python 3.11 (set PYTHON=...)"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-cache-dir -c $(CONSTRAINTS) --upgrade pip
	$(PY) -m pip install --quiet --no-cache-dir -c $(CONSTRAINTS) -e '.[notebooks,test]'
	$(PY) -m pip install --quiet --no-cache-dir -c $(CONSTRAINTS) --no-deps $(FACENET)
	@touch $(STAMP)

reproduce: setup
	$(VENV)/bin/vfcross reproduce --preset $(PRESET) --reports reports

test: pytest smoke nbval smoke-slice

pytest: setup
	$(PY) -m pytest -q tests

# Every notebook runs headless in the smoke preset, through the same runner as
# `make reproduce` (so the run's summary and README are built too); nbval then
# re-runs the executed copies (with the smoke parameters papermill injected) cell
# by cell: any error fails, and the cells tagged nbval-check-output (or holding
# a `# NBVAL_CHECK_OUTPUT` comment) must print what they printed in the smoke
# run, once tests/nbval_sanitize.cfg has masked times, paths, hashes and sizes.
# That re-run reads the smoke run's warm caches (finished runs, cached embeddings),
# so it checks that the notebooks run, not that the numbers stay: the regression
# check is tests/test_regression.py (pytest), against committed values.
smoke: setup
	@rm -rf $(SMOKE_DIR) && mkdir -p $(SMOKE_DIR)
	$(VENV)/bin/vfcross reproduce --preset smoke --reports $(SMOKE_DIR)/reports --work-dir $(SMOKE_DIR)

# The same notebooks end to end on the real slice with its official lists (few rows resolve there: the
# reports must say so); skipped with a line where the slice is absent.
smoke-slice: setup
	@if [ -d $(SLICE) ]; then \
	  rm -rf $(SLICE_DIR) && $(VENV)/bin/vfcross reproduce --preset smoke --root $(SLICE) \
	    --splits $(LISTS)/identity_splits.txt --lists $(LISTS) --reports $(SLICE_DIR)/reports --work-dir $(SLICE_DIR); \
	else echo "smoke-slice: $(SLICE) not found, skipped"; fi

nbval: smoke
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg $(addprefix $(SMOKE_DIR)/reports/notebooks/,$(notdir $(NOTEBOOKS)))

clean:
	rm -rf work .pytest_cache
