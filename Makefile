# The two commands of the README: `make demo` (the labelled-stream demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
PYTEST_ARGS ?= -q

.PHONY: install demo test lint services-up services-down clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check streamnlp tests

# Starts Kafka, Redis and a worker, streams sample chats and prints their labels.
demo: $(STAMP)
	$(BIN)/streamnlp demo

# Starts Kafka and Redis, runs the suite, and stops them again whatever happened.
test: $(STAMP)
	@bash -c 'trap "$(BIN)/streamnlp services down" EXIT; \
	  $(MAKE) --no-print-directory lint && \
	  $(BIN)/streamnlp services up && \
	  $(BIN)/pytest $(PYTEST_ARGS)'

services-up: $(STAMP)
	$(BIN)/streamnlp services up

services-down: $(STAMP)
	$(BIN)/streamnlp services down

clean: services-down
	rm -rf $(VENV) .state .pytest_cache .ruff_cache
