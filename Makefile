# Every target bootstraps .venv from pyproject.toml when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run check test lint typecheck bench docs lock mutation clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot $(ARGS)

# Is the setup ready? Token, permissions, Segmind key, data directory; spends nothing.
check: $(STAMP)
	$(BIN)/python -m bot check $(ARGS)

# Two workers: most end-to-end tests wait on the bot's and the fakes' timers, not the CPU,
# so the suite takes half the time even on two cores. TEST_WORKERS=0 runs it in-process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

# The README's settings table and .env.example, from the declarations in bot/config/settings.py.
docs: $(STAMP)
	$(BIN)/python -m bot.config --write

# requirements.lock: the runtime dependencies pinned with their hashes, for the Docker image
# (pip --require-hashes). Resolved for the image (Linux, Python 3.11) whichever Python runs
# this, by uv in a throwaway venv. Keeps the current pins that still fit pyproject.toml;
# ARGS=--upgrade moves every pin to the newest allowed (ARGS='--upgrade-package aiohttp': one).
UV_VERSION := 0.13.8
lock:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT \
	&& $(PYTHON) -m venv "$$tmp" && "$$tmp/bin/python" -m pip install -q uv==$(UV_VERSION) \
	&& "$$tmp/bin/uv" pip compile pyproject.toml --generate-hashes --python-version 3.11 \
		--python-platform linux --custom-compile-command "make lock" \
		--output-file requirements.lock --quiet $(ARGS)

# Mutation testing ([tool.mutmut] in pyproject.toml) in a venv of its own; not part of `make
# test` (~25 min on 2 cores). Each run starts afresh: mutmut's cache does not notice new
# tests, so a survivor would stay "survived". It ends with the survivors;
# `.venv-mutation/bin/mutmut show NAME` shows one.
MUTMUT_VERSION := 3.8.1
MUTATION_VENV := .venv-mutation
$(MUTATION_VENV)/.installed: pyproject.toml
	test -x $(MUTATION_VENV)/bin/python || $(PYTHON) -m venv $(MUTATION_VENV)
	$(MUTATION_VENV)/bin/python -m pip install -q -e '.[dev]' mutmut==$(MUTMUT_VERSION)
	touch $@

mutation: $(MUTATION_VENV)/.installed
	rm -rf mutants
	$(MUTATION_VENV)/bin/mutmut run --max-children 2 $(ARGS)
	$(MUTATION_VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) $(MUTATION_VENV) mutants .mypy_cache .pytest_cache .ruff_cache
