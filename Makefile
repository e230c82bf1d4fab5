# Fresh machine: `make run` (set up + start the local gateway) and `make test` (set up + run the tests).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8080

.PHONY: setup setup-dev run test test-fast bench synth clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.local-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[local]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.local-installed

setup: $(VENV)/.local-installed
setup-dev: $(VENV)/.dev-installed

run: setup
	$(BIN)/python -m llm_gateway.local --port $(PORT)

test: setup-dev
	$(BIN)/python -m pytest

test-fast: setup-dev
	$(BIN)/python -m pytest -m "not infra"

bench: setup-dev
	$(BIN)/python -m bench.run_all

# Synthesize cdk.out/ without the CDK CLI or an AWS account. The layer build needs PyPI;
# `make synth LAYER_FLAGS=--no-deps` stays offline (code-only assets: synth works, not deployable).
synth: setup-dev
	$(BIN)/python infra/build_layer.py $(LAYER_FLAGS)
	$(BIN)/python infra/app.py

clean:
	rm -rf $(VENV) cdk.out build .pytest_cache
