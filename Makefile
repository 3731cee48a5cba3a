# statekeeper: `make run` serves on 127.0.0.1:50051, `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_BACKEND ?= file

.PHONY: install system-deps run test lint proto proto-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## install: the Python virtualenv with the package and its development tools
install: $(STAMP)

## system-deps: Debian packages the tests need (redis-server), installed when missing
system-deps:
	bash scripts/install_system_deps.sh

## run: serve on 127.0.0.1:50051
run: install
	$(BIN)/statekeeper serve --host 127.0.0.1 --port 50051 --backend $(RUN_BACKEND) --data-dir ./data

## test: install everything the tests need, then run the whole suite
test: install system-deps
	$(PY) -m pytest

## proto: regenerate every stub from proto/ with the pinned generators
proto: install
	PATH=$(abspath $(BIN)):$$PATH bash scripts/gen_python.sh

## proto-check: fail when the committed generated code differs from a fresh generation
proto-check: proto
	@git diff --exit-code --stat -- clients/python/statekeeper/v1 || \
	  (echo "generated code is not current: run 'make proto' and commit" && exit 1)
	@test -z "$$(git status --porcelain -- clients/python/statekeeper/v1)" || \
	  (git status --porcelain -- clients/python/statekeeper/v1; echo "untracked generated files" && exit 1)

## lint: ruff, mypy, buf lint and format, generated code current
lint: install proto-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# -- benchmarks (bench/; never part of `make test`) -------------------------------------------
.PHONY: bench bench-quick bench-deps
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

## bench-deps: benchmark-only Python packages and the servers it drives (redis-server, etcd)
bench-deps: $(BENCH_STAMP)
	bash bench/install_system_deps.sh

## bench: the full benchmark (results in bench/results/); `make bench ARGS=--quick` for a short run
bench: bench-deps
	$(PY) -m bench $(ARGS)

## bench-quick: the benchmark in quick mode (under 2 minutes on an idle machine)
bench-quick: bench-deps
	$(PY) -m bench --quick $(ARGS)
