# The two set-up commands: `make demo` and `make test`. Each creates .venv when
# missing and installs the locked stack (requirements.lock, exact versions with hashes).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Commands run inside the project's venv (dg launches code servers with the active one).
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := False
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: install demo run test lint dev docs lock clean bench

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/dbt parse --quiet --project-dir dbt_project --profiles-dir dbt_project
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/alliance-wh demo

run: install
	$(BIN)/alliance-wh run

# The dbt SQL too: lower-case and sqlfluff-clean (rules in .sqlfluff; the jinja templater, no database).
# dbt_project/tests may be absent (no singular data tests yet): lint only the folders that exist.
SQL_LINT_PATHS := $(wildcard dbt_project/models dbt_project/macros dbt_project/tests)
lint: install
	$(BIN)/ruff check ingestion orchestration expectations tests
	$(BIN)/sqlfluff lint $(SQL_LINT_PATHS)

test: install lint
	$(BIN)/dg check defs
	$(BIN)/python -m pytest

dev: install
	$(BIN)/dg dev

docs: install
	$(BIN)/alliance-wh docs

# The whole nightly run at four sizes (benchmarks/README.md); pick sizes with SIZES="1000 10000",
# more options with BENCH_ARGS="--profile" (see .venv/bin/python benchmarks/bench.py --help).
SIZES ?=
BENCH_ARGS ?=
bench: install
	$(BIN)/python benchmarks/bench.py $(if $(strip $(SIZES)),--sizes $(SIZES)) $(BENCH_ARGS)

# Re-pin the stack (needs the registry); commit the new requirements.lock.
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 requirements.in -o requirements.lock

clean:
	rm -rf $(VENV) dbt_project/target dbt_project/logs .pytest_cache
