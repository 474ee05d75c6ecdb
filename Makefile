# pacda — the two commands of the README, and the marked extras.
#   make demo   set up .venv and run a complete local audit
#   make test   set up .venv and run lint, type checks and the default test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pacda-installed

.PHONY: venv demo test lint typecheck pytest bench test-slow test-browser clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; pacda needs Python 3.11 (set PYTHON=...)" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of PyTorch, pinned: a looser pin pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# kronfluence declares torchvision (a CUDA torch with it) but imports none of it:
	# its runtime dependencies come with the libraries extra, kronfluence without any.
	$(BIN)/pip install --quiet --no-deps kronfluence==1.0.1
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo_audit.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# --durations=15: the slowest tests, in every CI log, so suite-time regressions show.
pytest: $(STAMP)
	$(BIN)/pytest --durations=15

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/pytest -m bench -s tests/bench

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

# The HTML report in headless Chromium (Debian's package; installed here when missing).
test-browser: $(STAMP)
	command -v chromium || (apt-get update && apt-get install -y chromium)
	$(BIN)/pytest -m browser

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
