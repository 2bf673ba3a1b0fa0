# Two commands from a fresh clone: `make demo` and `make test`. Both create .venv when missing
# and reinstall only when pyproject.toml or constraints.txt changed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-base: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[dev,torch]'
	@touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(BIN)/bastion demo

# Coverage is measured on every run: lines (floor below) and branches, reported together.
COVERAGE_FLOOR ?= 94
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)
	@if [ -z "$(PYTEST_ARGS)" ]; then $(BIN)/python tools/coverage_floor.py --lines $(COVERAGE_FLOOR); fi

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench tools
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
