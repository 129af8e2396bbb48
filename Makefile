# Parley: every command the project has. `make help` lists them.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "==> creating virtualenv and installing Parley (first run takes a minute)"
	@test -d $(VENV) || $(PY) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install Parley with its dev tools

run: $(STAMP) ## start Parley at http://127.0.0.1:8080 (gateway + server, embedded defaults)
	@$(BIN)/parley serve

server: $(STAMP) ## start only the API/WebSocket server on :5000
	@$(BIN)/parley server

migrate: $(STAMP) ## apply database migrations
	@$(BIN)/parley migrate

test: $(STAMP) ## run the whole test suite (SQLite and PostgreSQL, Redis, gateway, browser)
	@echo "==> unit and integration tests (SQLite and PostgreSQL, Redis, S3, gateway)"
	@$(BIN)/python -m pytest -q tests/unit tests/integration $(PYTEST_ARGS)
	@echo "==> browser tests (Playwright on Debian's chromium)"
	@$(BIN)/python -m pytest -q tests/e2e $(PYTEST_ARGS)

lint: $(STAMP) ## ruff and mypy
	@$(BIN)/ruff check parley tests bench
	@$(BIN)/ruff format --check parley tests bench
	@$(BIN)/mypy parley

format: $(STAMP) ## format the code
	@$(BIN)/ruff format parley tests bench
	@$(BIN)/ruff check --fix parley tests bench

bench: $(STAMP) ## load benchmark: prints a table, writes bench/results/*.json
	@$(BIN)/python -m bench

clean: ## remove the virtualenv and caches (keeps ./data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

.PHONY: help install run server migrate test lint format bench clean
