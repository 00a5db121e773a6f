# wirehub's single entry point: `make serve` and `make test` are the quickstart;
# CI runs `.ci/run`, which calls `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
NPM_INSTALLED := demo/node_modules/.installed tests/interop/js/node_modules/.installed

.PHONY: serve test lint style types pytest clean

serve: $(INSTALLED) demo/node_modules/.installed
	$(BIN)/wirehub serve --config config/development.toml

test: $(INSTALLED) $(NPM_INSTALLED) lint pytest

lint: style types

style: $(INSTALLED)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

types: $(INSTALLED)
	$(BIN)/mypy

pytest: $(INSTALLED) $(NPM_INSTALLED)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "wirehub needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e . --group test --group lint
	@touch $@

%/node_modules/.installed: %/package.json %/package-lock.json
	npm ci --prefix $* --no-audit --no-fund
	@touch $@

clean:
	rm -rf $(VENV) demo/node_modules tests/interop/js/node_modules .pytest_cache .mypy_cache .ruff_cache
