# wirehub's single entry point: `make serve` and `make test` are the quickstart;
# CI runs `.ci/run`, which calls `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# bench/ is in: tests/test_bench_smoke.py runs the harness in a few seconds.
NPM_INSTALLED := demo/node_modules/.installed tests/interop/js/node_modules/.installed \
	bench/node_modules/.installed

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
	$(BIN)/python -m pip install --quiet -e '.[redis]' --group test --group lint
	@touch $@

%/node_modules/.installed: %/package.json %/package-lock.json
	npm ci --prefix $* --no-audit --no-fund
	@touch $@

clean:
	rm -rf $(VENV) demo/node_modules tests/interop/js/node_modules bench/node_modules .pytest_cache .mypy_cache .ruff_cache

# Benchmark: wirehub vs its peers, same run, as ratios (bench/README.md). Writes
# bench/RESULTS.md and bench/charts/*.png. Takes a while; `make bench-smoke` takes seconds.
.PHONY: bench bench-smoke

bench: $(INSTALLED) bench/node_modules/.installed
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/run.py --scenario all --rounds 3 $(BENCH_ARGS)

bench-smoke: $(INSTALLED) bench/node_modules/.installed
	$(BIN)/python bench/run.py --smoke
