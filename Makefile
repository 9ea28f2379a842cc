# The README's commands. Each target installs what it needs first (idempotent).
PYTHON ?= python3

.PHONY: install install-dev demo test test-fast lint format

install:
	PYTHON=$(PYTHON) bash tools/install.sh

install-dev:
	PYTHON=$(PYTHON) bash tools/install.sh --dev

demo: install
	edgeped demo

test: install-dev
	$(PYTHON) -m pytest

test-fast: install-dev
	$(PYTHON) -m pytest -m "not slow and not emulated and not ssh"

lint:
	$(PYTHON) -m ruff check edgeped tests device tools benchmarks
	$(PYTHON) -m ruff format --check edgeped tests device tools benchmarks

format:
	$(PYTHON) -m ruff check --fix edgeped tests device tools benchmarks
	$(PYTHON) -m ruff format edgeped tests device tools benchmarks
