# One entry point for people and CI. Every target creates or refreshes .venv itself.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= examples/gateway.toml

.PHONY: run test lint bench certs clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

certs-example/out/ca.pem: | $(STAMP)
	$(BIN)/gateway certs example --out certs-example/out

certs: $(STAMP)
	$(BIN)/gateway certs example --out certs-example/out --force

# The demo people of the case desk (certs-example/README.md): the handler and the reader of the demo desk
# unit, and a handler of another unit, who sees none of its cases. Granting again changes nothing.
run: $(STAMP) certs-example/out/ca.pem
	$(BIN)/gateway --config $(CONFIG) routes bootstrap examples/routing.yaml --author make-run
	$(BIN)/gateway --config $(CONFIG) desk grant SE2321000016-HND1 SE2321000016-9K2M handler
	$(BIN)/gateway --config $(CONFIG) desk grant SE2321000016-RDR1 SE2321000016-9K2M reader
	$(BIN)/gateway --config $(CONFIG) desk grant SE2321000016-HND2 SE2321000016-7Q6X handler
	$(BIN)/gateway --config $(CONFIG) serve

test: $(STAMP)
	$(BIN)/python -m pytest

# Benchmarks (not part of `make test`): about 5 minutes on 2 cores; writes tests/bench/results/*.json.
bench: $(STAMP)
	GATEWAY_TEST_POSTGRES_URL=$${GATEWAY_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
		$(BIN)/python -m tests.bench.run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
