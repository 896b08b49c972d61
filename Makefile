# The two commands of the README. Both create .venv/ (pinned by requirements/constraints.txt) if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: study test setup

$(BIN)/snakemake: pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e ".[workflow,offline-data,test]"
	touch $@

setup: $(BIN)/snakemake

study: setup
	$(BIN)/snakemake --cores all

test: setup
	$(BIN)/python -m pytest -q
