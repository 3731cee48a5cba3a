# statekeeper: `make run` serves on 127.0.0.1:50051, `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_BACKEND ?= file

.PHONY: help install system-deps run test lint proto proto-check breaking breaking-baseline clean
.PHONY: image image-test tools ts-deps go-deps clients \
  test-clients lint-clients

# Pinned generators and tools for Go / TypeScript (installed by `make tools` into .tools/bin;
# the TypeScript plugin is pinned in clients/ts/package.json).
TOOLS := $(CURDIR)/.tools/bin
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPCURL_VERSION := v1.9.4
TOOL_STAMPS := $(TOOLS)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION) \
  $(TOOLS)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION) $(TOOLS)/.grpcurl-$(GRPCURL_VERSION)
GENERATED := clients/python/statekeeper/v1 clients/go/statekeeperv1 clients/ts/src/gen
TS_STAMP := clients/ts/node_modules/.installed-stamp
TS_BUILD := clients/ts/dist/.build-stamp
GO_RUNNER := build/interop/interop-go
GO_SOURCES := $(shell find clients/go -name '*.go' 2>/dev/null) clients/go/go.mod clients/go/go.sum
TS_SOURCES := $(shell find clients/ts/src -name '*.ts' 2>/dev/null) clients/ts/tsconfig.json

## help: list every target with one line each (the `## target: text` comments of this file)
help:
	@sed -n 's/^## \([a-z-]*\): \(.*\)/\1\t\2/p' $(MAKEFILE_LIST) | \
	  awk -F '\t' '{ printf "  %-18s %s\n", $$1, $$2 }'

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

## test: install everything the tests need (Go and TypeScript clients built), then run every test
test: install system-deps clients
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-clients

## tools: the pinned Go generators and grpcurl, in .tools/bin
tools: $(TOOL_STAMPS)

$(TOOLS)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	GOBIN=$(TOOLS) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	touch $@

$(TOOLS)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION):
	GOBIN=$(TOOLS) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	touch $@

$(TOOLS)/.grpcurl-$(GRPCURL_VERSION):
	GOBIN=$(TOOLS) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
	touch $@

## ts-deps: the TypeScript client's npm packages, exactly as package-lock.json pins them
ts-deps: $(TS_STAMP)

$(TS_STAMP): clients/ts/package.json clients/ts/package-lock.json
	cd clients/ts && npm ci --no-audit --no-fund
	touch $@

## go-deps: the modules of the Go client and of bench/loadgen (their go.sum files pin them)
go-deps:
	cd clients/go && go mod download
	cd bench/loadgen && go mod download

## clients: build the Go interop runner and the TypeScript package (skipped when up to date)
clients: tools ts-deps go-deps $(GO_RUNNER) $(TS_BUILD)

$(GO_RUNNER): $(GO_SOURCES)
	cd clients/go && go build -o $(CURDIR)/$(GO_RUNNER) ./cmd/interop

$(TS_BUILD): $(TS_SOURCES) $(TS_STAMP)
	cd clients/ts && npm run --silent build
	touch $@

## test-clients: the Go and TypeScript clients' own tests (no server needed)
test-clients: clients
	cd clients/go && go vet ./... && go test -skip Live ./...
	cd clients/ts && npm test

## lint-clients: gofmt and go vet on the Go client and bench/loadgen, tsc on the TypeScript client
lint-clients: go-deps ts-deps
	@test -z "$$(gofmt -l clients/go bench/loadgen)" || \
	  (gofmt -l clients/go bench/loadgen; echo "gofmt needed" && exit 1)
	cd clients/go && go vet ./...
	cd bench/loadgen && go vet ./...
	cd clients/ts && npx tsc -p tsconfig.json --noEmit

## proto: regenerate every stub (Python, Go, TypeScript) from proto/ with the pinned generators
proto: install tools ts-deps
	PATH=$(abspath $(BIN)):$$PATH bash scripts/gen_python.sh
	$(BIN)/buf generate

## proto-check: fail when the committed generated code differs from a fresh generation
proto-check: proto
	@git diff --exit-code --stat -- $(GENERATED) || \
	  (echo "generated code is not current: run 'make proto' and commit" && exit 1)
	@test -z "$$(git status --porcelain -- $(GENERATED))" || \
	  (git status --porcelain -- $(GENERATED); echo "untracked generated files" && exit 1)

# The wire API as it last landed: a buf image (JSON, no source info, with its google/protobuf
# imports so it resolves on its own). `make breaking` compares proto/ against it with the rule
# category in buf.yaml's `breaking:` section; no git history is needed.
API_BASELINE := api-baseline/statekeeper-v1.image.json

## breaking: fail when proto/ breaks wire, JSON or generated-code compatibility with the baseline
breaking: install
	$(BIN)/buf breaking --exclude-imports --against $(API_BASELINE)

## breaking-baseline: rewrite the baseline from the current protos (when a release moves the API)
breaking-baseline: install
	@mkdir -p $(dir $(API_BASELINE))
	set -o pipefail; $(BIN)/buf build --exclude-source-info -o '-#format=json' | \
	  $(PY) -m json.tool --indent 1 > $(API_BASELINE).tmp
	mv $(API_BASELINE).tmp $(API_BASELINE)

## lint: ruff, mypy, buf lint, format and breaking, generated code current
lint: install proto-check lint-clients breaking
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code

## clean: remove the virtualenv, caches, tools and client builds (./data is kept)
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .tools build/interop clients/ts/dist \
	  clients/ts/node_modules

# -- benchmarks (bench/; never part of `make test`) -------------------------------------------
.PHONY: bench bench-quick bench-deps
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

## bench-deps: benchmark-only Python packages and the servers it drives (redis-server, etcd, PostgreSQL)
bench-deps: $(BENCH_STAMP)
	bash bench/install_system_deps.sh

## bench: the full benchmark (results in bench/results/); `make bench ARGS=--quick` for a short run
bench: bench-deps
	$(PY) -m bench $(ARGS)

## bench-quick: the benchmark in quick mode (under 2 minutes on an idle machine)
bench-quick: bench-deps
	$(PY) -m bench --quick $(ARGS)

## image: the container image statekeeper:latest (buildah, vfs, chroot; base image made locally)
image: install
	PY=$(PY) bash scripts/build_image.sh

## image-test: run the built image's server with buildah and call it (health, put/get, metrics)
image-test: install
	PY=$(PY) bash scripts/image_test.sh
