# wirehub's single entry point: `make serve` and `make test` are the quickstart;
# CI runs `.ci/run`, which calls `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two stamps: serving needs wirehub and its runtime dependencies only; the tests and the
# linters add their own groups on top.
INSTALLED := $(VENV)/.installed-serve
TEST_INSTALLED := $(VENV)/.installed-test
EXAMPLES_INSTALLED := $(VENV)/.installed-examples
# The apps under examples/ (`make example NAME=chat`).
EXAMPLES := chat dashboard game editor notifications proxy
# Those with a page, hence npm packages (proxy has none: its clients are the SDKs).
EXAMPLES_NPM := $(filter-out proxy,$(EXAMPLES))
EXAMPLE_PORT ?= 8010
# bench/ is in: tests/test_bench_smoke.py runs the harness in a few seconds; the examples
# are: tests/examples/ drives each one in Chromium.
NPM_INSTALLED := demo/node_modules/.installed tests/interop/js/node_modules/.installed \
	bench/node_modules/.installed $(EXAMPLES_NPM:%=examples/%/node_modules/.installed)

.PHONY: serve test lint style types pytest clean example

serve: $(INSTALLED) demo/node_modules/.installed
	$(BIN)/wirehub serve --config config/development.toml

test: $(TEST_INSTALLED) $(NPM_INSTALLED) lint pytest

lint: style types

style: $(TEST_INSTALLED)
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples

# The examples too, each from its own folder: every app has an app.py of its own.
types: $(TEST_INSTALLED)
	$(BIN)/mypy
	@for name in $(EXAMPLES); do \
		echo "mypy examples/$$name"; \
		(cd examples/$$name && ../../$(BIN)/mypy --config-file ../../pyproject.toml \
			--cache-dir ../../.mypy_cache *.py) || exit 1; \
	done

pytest: $(TEST_INSTALLED) $(NPM_INSTALLED)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "wirehub needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(TEST_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[redis]' --group test --group lint
	@touch $@

$(EXAMPLES_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e . --group examples
	@touch $@

%/node_modules/.installed: %/package.json %/package-lock.json
	npm ci --prefix $* --no-audit --no-fund
	@touch $@

clean:
	rm -rf $(VENV) demo/node_modules tests/interop/js/node_modules bench/node_modules .pytest_cache .mypy_cache .ruff_cache
	rm -rf $(EXAMPLES:%=examples/%/node_modules) examples/editor/static/build

# One of the apps under examples/, on http://127.0.0.1:$(EXAMPLE_PORT)/: installs what it
# needs (Python group "examples", its npm packages, its bundle if it has one), then runs it.
ifneq ($(filter example,$(MAKECMDGOALS)),)
ifeq ($(filter $(NAME),$(EXAMPLES)),)
$(error usage: make example NAME=<one of: $(EXAMPLES)>)
endif
endif

example: $(EXAMPLES_INSTALLED) $(if $(filter $(NAME),$(EXAMPLES_NPM)),examples/$(NAME)/node_modules/.installed)
	$(if $(filter $(NAME),$(EXAMPLES_NPM)),npm run build --if-present --silent --prefix examples/$(NAME))
	@echo "examples/$(NAME): open http://127.0.0.1:$(EXAMPLE_PORT)/ (Ctrl+C stops it)"
	$(BIN)/python examples/$(NAME)/app.py --port $(EXAMPLE_PORT)

# Benchmark: wirehub vs its peers, same run, as ratios (bench/README.md). Writes
# bench/RESULTS.md and bench/charts/*.png. Takes a while; `make bench-smoke` takes seconds.
.PHONY: bench bench-smoke

bench: $(TEST_INSTALLED) bench/node_modules/.installed
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/run.py --scenario all --rounds 3 $(BENCH_ARGS)

bench-smoke: $(TEST_INSTALLED) bench/node_modules/.installed
	$(BIN)/python bench/run.py --smoke
