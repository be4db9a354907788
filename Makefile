# Loyalty Workbench — the two quick-start commands are `make reports` and `make test`.
# Both create (or reuse) .venv with the project installed.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
WB     := $(VENV)/bin/workbench
STAMP  := $(VENV)/.installed
SAMPLE ?= data/sample
PERIOD ?= last-month
LANGS  ?= both
PYTEST_ARGS ?=

.PHONY: setup sample validate reports test test-fast lint lab bench clean help

help:
	@echo "make reports   set up, generate the sample data, validate it, render the report pack into reports/"
	@echo "make test      set up, run all tests (unit, notebooks, pipeline, browser)"
	@echo "make lab       open JupyterLab on notebooks/ with the project's environment"
	@echo "make bench     speed and memory benchmarks (bench/)"
	@echo "make lint      ruff"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

$(SAMPLE)/TRUTH.json: | $(STAMP)
	$(WB) sample --out $(SAMPLE) --customers 20000 --seed 42

sample: $(SAMPLE)/TRUTH.json

validate: sample
	$(WB) validate $(SAMPLE)

reports: validate
	$(WB) reports run --data $(SAMPLE) --period $(PERIOD) --lang $(LANGS) --out reports
	@echo "Open reports/index.html"

# one pytest run (one summary line): unit/pipeline/browser tests, and every notebook executed by nbval
# on data/sample with its default parameters (the fixture notebooks are run by test_reports instead).
# Two workers (the machines have 2 cores), one test file per worker at a time: a notebook's cells and a
# module's shared fixtures stay together. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
test: sample
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --ignore=tests/fixtures \
		$(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest tests -m "not slow and not browser" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check workbench tests bench

lab: sample
	cd notebooks && ../$(VENV)/bin/jupyter lab

bench: setup
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@failed=""; for script in bench/[!_]*.py; do echo "== $$script"; $(PY) $$script || failed="$$failed $$script"; done; \
	  if [ -n "$$failed" ]; then echo "missed a target:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
