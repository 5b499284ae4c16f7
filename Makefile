# Two entry points for a fresh machine: `make dev` runs the gateway on the embedded local stack,
# `make test` runs every test. Both install what they need first (Debian packages, a virtualenv,
# and the real Conductor OSS and Apache Kafka from Maven Central into ~/.cache/conductor-gateway).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup dev test lint bench clean

setup: $(VENV)/.installed
	$(BIN)/gateway dev fetch

$(VENV)/.installed: pyproject.toml .ci/system-packages
	bash .ci/system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

dev: setup
	$(BIN)/gateway dev

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check gateway tests bench examples
	$(BIN)/ruff format --check gateway tests bench examples
	$(BIN)/mypy --strict gateway

bench: setup
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
