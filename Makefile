# polyroute: `make run` starts the gateway, `make test` runs every check and test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run install dev test check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"

$(STAMP_RUN): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(STAMP_DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@ $(STAMP_RUN)

install: $(STAMP_RUN)

dev: $(STAMP_DEV)

run: $(STAMP_RUN)
	$(BIN)/polyroute serve

check: $(STAMP_DEV)
	PATH="$(abspath $(BIN)):$$PATH" scripts/check

test: $(STAMP_DEV)
	PATH="$(abspath $(BIN)):$$PATH" scripts/check
	scripts/install_agents
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || echo "wrk could not be installed: the bench test will skip"
	PATH="$(abspath $(BIN)):$$PATH" scripts/test

bench: $(STAMP_DEV)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || (apt-get update -qq && apt-get install -y -qq nginx-light)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
