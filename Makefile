# vfcross: two commands do everything on a fresh machine.
#   make reproduce   set up if needed, build the synthetic data, run every notebook, write reports/
#   make test        set up if needed, then pytest, papermill smoke runs and nbval
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# The virtual environment is rebuilt when it is missing or older than these files.
STAMP := $(VENV)/.installed
# facenet-pytorch 2.6.0 pins torch<2.3, numpy<2, Pillow<10.3 in its metadata;
# those pins are stale (it runs on the torch 2.11 triple), so it is installed
# without its dependencies, which pyproject.toml provides.
FACENET := facenet-pytorch==2.6.0
PRESET ?= default
SMOKE_DIR := work/smoke
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# Tests, notebooks and workers share two cores: keep torch from oversubscribing.
export OMP_NUM_THREADS ?= 2
export PYTHONHASHSEED := 0

.PHONY: setup reproduce test pytest smoke nbval clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "vfcross needs Python 3.11 (set PYTHON=...)"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[notebooks,test]'
	$(PY) -m pip install --quiet --no-deps $(FACENET)
	@touch $(STAMP)

reproduce: setup
	$(VENV)/bin/vfcross reproduce --preset $(PRESET) --reports reports

test: pytest smoke nbval

pytest: setup
	$(PY) -m pytest -q tests

# Every notebook runs headless in the smoke preset; nbval then re-runs the
# executed copies (with the smoke parameters papermill injected) cell by cell.
smoke: setup
	@rm -rf $(SMOKE_DIR) && mkdir -p $(SMOKE_DIR)
	@for nb in $(NOTEBOOKS); do \
	  echo "papermill smoke: $$nb"; \
	  $(VENV)/bin/papermill -k python3 --log-level ERROR --no-progress-bar --cwd notebooks "$$nb" "$(SMOKE_DIR)/$$(basename $$nb)" \
	    -p preset smoke -p work_dir $(CURDIR)/$(SMOKE_DIR) -p reports_dir $(CURDIR)/$(SMOKE_DIR)/reports; \
	done

nbval: smoke
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env $(addprefix $(SMOKE_DIR)/,$(notdir $(NOTEBOOKS)))

clean:
	rm -rf work .pytest_cache
