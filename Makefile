# Set-up and entry points. `make run` and `make test` create .venv when it is
# missing, install the locked dependencies once (a stamp file remembers), then
# run the workflow or the tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SNAKEMAKE_ARGS ?=

.PHONY: setup run test lint lock benchmark verify

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The default target of the Snakefile: every artifact the config enables.
run: $(STAMP)
	$(BIN)/snakemake $(SNAKEMAKE_ARGS)

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff format --check src scripts tests benchmarks
	$(BIN)/ruff check src scripts tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

# Every cached dataset and code store against its recorded checksums.
verify: $(STAMP)
	$(BIN)/python -m neuralcode.verify results

# Our paths against the obvious alternatives; writes benchmarks/RESULTS.md.
benchmark: $(STAMP)
	$(BIN)/python benchmarks/run.py

# Regenerate the lock from the direct pins in requirements.in.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -r requirements.in
	{ head -2 requirements.txt; .venv-lock/bin/pip freeze --exclude-editable; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.txt && rm -rf .venv-lock
