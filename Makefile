# Parley: every command the project has. `make help` lists them.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_WORKERS ?= 2  # pytest-xdist processes for the unit and integration tests (0: in this process)

.DEFAULT_GOAL := help

BASE_URL ?= http://127.0.0.1:8080
SERVER_URL ?= http://127.0.0.1:5000
BACKUP_DIR ?= backups
ENV_FILE ?= deploy/.env
COMPOSE := docker compose -f deploy/docker-compose.yml
IMAGE ?= parley:latest
# Docker targets stop with one line when there is no Docker engine to talk to.
NEED_DOCKER = @docker info >/dev/null 2>&1 || { echo "make $@: needs Docker (docker info failed: install Docker and start its engine)"; exit 1; }

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

test: $(STAMP) ## run the whole test suite (web client units, SQLite and PostgreSQL, Redis, gateway, browser)
	@echo "==> web client unit tests (Node's test runner)"
	@command -v node >/dev/null || { echo "make test: needs Node.js 20.11 or newer for tests/js (node is not on PATH)"; exit 1; }
	@node --test tests/js/
	@echo "==> unit and integration tests (SQLite and PostgreSQL, Redis, S3, gateway), in $(TEST_WORKERS) processes"
	@$(BIN)/python -m pytest -q -n $(TEST_WORKERS) tests/unit tests/integration $(PYTEST_ARGS)
	@echo "==> browser tests (Playwright on Debian's chromium)"
	@$(BIN)/python -m pytest -q tests/e2e $(PYTEST_ARGS)

test-fast: $(STAMP) ## the fast tier only: unit and in-process integration tests (docs/testing.md)
	@$(BIN)/python -m pytest -q -m "not live" tests/unit tests/integration $(PYTEST_ARGS)

lint: $(STAMP) ## ruff and mypy
	@$(BIN)/ruff check parley tests bench
	@$(BIN)/ruff format --check parley tests bench
	@$(BIN)/mypy parley

format: $(STAMP) ## format the code
	@$(BIN)/ruff format parley tests bench
	@$(BIN)/ruff check --fix parley tests bench

bench: $(STAMP) ## load benchmark: prints a table, writes bench/results/*.json
	@$(BIN)/python -m bench

loadtest: $(STAMP) ## capacity: N simulated people through the gateway, stepping N (docs/capacity.md)
	@$(BIN)/python -m bench.capacity $(LOADTEST_ARGS)

clean: ## remove the virtualenv and caches (keeps ./data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

# --- operations (docs/operations.md) ---------------------------------------------------

env: ## deploy/.env from deploy/env.example with random secrets (ENV_FILE; never overwrites)
	@$(PY) deploy/scripts/new_env.py deploy/env.example $(ENV_FILE)

build: ## build the Docker image (IMAGE, default parley:latest; needs Docker)
	$(NEED_DOCKER)
	docker build -f deploy/Dockerfile -t $(IMAGE) .

up: ## start the compose stack: nginx, 2 gateways, 2 servers, PostgreSQL, Redis, MinIO, monitoring
	$(NEED_DOCKER)
	@test -f deploy/.env || { echo "make up: create deploy/.env first (make env writes one with random secrets)"; exit 1; }
	$(COMPOSE) up -d

up-build: ## rebuild the image, then start the compose stack
	$(NEED_DOCKER)
	@test -f deploy/.env || { echo "make up-build: create deploy/.env first (make env writes one with random secrets)"; exit 1; }
	$(COMPOSE) up -d --build

down: ## stop the compose stack (volumes kept)
	$(NEED_DOCKER)
	$(COMPOSE) down

logs: ## follow the logs of every compose service
	$(NEED_DOCKER)
	$(COMPOSE) logs -f --tail=100

logs-app: ## follow the logs of Parley's gateways and servers (compose)
	$(NEED_DOCKER)
	$(COMPOSE) logs -f --tail=100 gateway1 gateway2 server1 server2

status: ## compose services and their health, or the local Parley's health without Docker
	@if docker info >/dev/null 2>&1 && [ -n "$$($(COMPOSE) ps -q 2>/dev/null)" ]; then \
		$(COMPOSE) ps; \
	else \
		echo "(no compose stack running: checking $(BASE_URL))"; \
		$(BIN)/python deploy/scripts/status.py health $(BASE_URL) $(SERVER_URL); \
	fi

dev-setup: $(STAMP) ## prepare a development machine: .venv, browsers for e2e tests, migrated database
	@$(BIN)/python -m playwright install chromium >/dev/null 2>&1 || echo "(playwright browsers not installed: the e2e tests use Debian's chromium if present)"
	@$(BIN)/parley migrate

dev: $(STAMP) ## PostgreSQL, Redis and MinIO in Docker when available, then Parley natively on them
	@if docker info >/dev/null 2>&1; then \
		$(PY) deploy/scripts/new_env.py deploy/env.example deploy/.env >/dev/null; \
		$(COMPOSE) up -d --wait postgres redis minio && \
		set -a && . deploy/.env && set +a && \
		DATABASE_URL=postgresql://$$POSTGRES_USER:$$POSTGRES_PASSWORD@127.0.0.1:$${POSTGRES_HOST_PORT:-5432}/$$POSTGRES_DB \
		REDIS_URL=redis://:$$REDIS_PASSWORD@127.0.0.1:$${REDIS_HOST_PORT:-6379}/0 \
		S3_ENDPOINT=http://127.0.0.1:$${MINIO_HOST_PORT:-9000} S3_ACCESS_KEY=$$MINIO_ROOT_USER S3_SECRET_KEY=$$MINIO_ROOT_PASSWORD \
		LOG_LEVEL=debug $(BIN)/parley serve; \
	else \
		echo "(no Docker: Parley on the configured backends, else the embedded SQLite ones)"; \
		LOG_LEVEL=debug $(BIN)/parley serve; \
	fi

dev-app: $(STAMP) ## only Parley, natively, on the configured backends (debug logs)
	@LOG_LEVEL=debug $(BIN)/parley serve

api-test: $(STAMP) ## exercise the whole API of the instance at BASE_URL (default http://127.0.0.1:8080)
	@$(BIN)/python deploy/scripts/api_test.py $(BASE_URL)

health: $(STAMP) ## health of the gateway at BASE_URL and the server at SERVER_URL
	@$(BIN)/python deploy/scripts/status.py health $(BASE_URL) $(SERVER_URL)

stats: $(STAMP) ## users, chats, messages, sockets and key metrics of the running instance
	@$(BIN)/python deploy/scripts/status.py stats $(BASE_URL) $(SERVER_URL)

db-shell: $(STAMP) ## psql (PostgreSQL) or sqlite3 on the configured database
	@$(BIN)/python deploy/scripts/db.py shell

db-backup: $(STAMP) ## back up the configured database and the file store into ./backups (BACKUP_DIR)
	@$(BIN)/python deploy/scripts/db.py backup $(BACKUP_DIR)

db-migrate: $(STAMP) ## apply database migrations to the configured database
	@$(BIN)/parley migrate

clean-all: clean ## clean, plus ./data, ./backups and the compose stack's volumes (asks first)
	@read -r -p "Delete ./data, ./backups and the compose volumes? [y/N] " answer; [ "$$answer" = y ] || { echo "nothing deleted"; exit 1; }
	rm -rf data backups
	@if docker info >/dev/null 2>&1; then $(COMPOSE) down -v; else echo "(no Docker: compose volumes not touched)"; fi

.PHONY: help install run server migrate test test-fast lint format bench loadtest clean env build up up-build down \
	logs logs-app status dev-setup dev dev-app api-test health stats db-shell db-backup \
	db-migrate clean-all
