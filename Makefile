# `make run` and `make test` work on a fresh machine: they create .venv and install what is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
REQS_HASH := $(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(REQS_HASH)
export PYTHONPATH := $(CURDIR)

.PHONY: install run test test-fast lint format bench clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## Run the whole product (embedded default without AMQP_URL/DATABASE_URL; one process per service with both).
run: install
	$(PY) -m services run

## Run every test (needs PostgreSQL and RabbitMQ on 127.0.0.1; .ci/run starts them).
test: install
	@bash scripts/system-deps.sh
	$(PY) -m pytest -q

## The long fault run: load + kills + broker/database restarts on a private PostgreSQL and RabbitMQ (docs/RELIABILITY.md).
SOAK_SECONDS ?= 600
.PHONY: soak
soak: install
	$(PY) -m bench.soak --duration $(SOAK_SECONDS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
