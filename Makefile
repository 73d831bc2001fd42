# TokenHub: `make demo` runs the site with a demo upstream; `make test` runs every test.
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help venv venv-dev venv-bench demo test test-fast bench bench-pooler lint format run worker beat clean

help:
	@echo "make demo       set up and run the site on http://127.0.0.1:8000 with a demo upstream"
	@echo "make test       set up and run the whole test suite (PostgreSQL + Redis, then SQLite)"
	@echo "make test-fast  the suite on the embedded SQLite default only (no services needed)"
	@echo "make bench      the benchmark (PEERS=litellm adds the LiteLLM proxy); never part of make test"
	@echo "make bench-pooler  TokenHub on PostgreSQL directly and behind PgBouncer (transaction mode)"
	@echo "make lint       ruff"
	@echo "make run        the production ASGI stack (gunicorn + uvicorn workers) with your environment"
	@echo "make worker / make beat   Celery worker / beat with your environment"

venv:
	@scripts/setup-venv requirements.txt

venv-dev:
	@scripts/setup-venv requirements-dev.txt

venv-bench:
	@scripts/setup-venv requirements-bench.txt

bench: venv-bench
	@$(PY) -m bench.run

bench-pooler: venv-bench
	@$(PY) -m bench.pooler

demo: venv-dev
	@$(PY) -m devtools.demo

test: venv-dev
	@scripts/run-tests

test-fast: venv-dev
	@env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -m "not services and not soak"

lint: venv-dev
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

format: venv-dev
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

run: venv
	@$(VENV)/bin/gunicorn -c gunicorn.conf.py tokenhub.asgi:application

worker: venv
	@$(VENV)/bin/celery -A tokenhub worker --loglevel=INFO

beat: venv
	@$(VENV)/bin/celery -A tokenhub beat --loglevel=INFO

clean:
	rm -rf $(VENV) staticfiles .pytest_cache test-artifacts
