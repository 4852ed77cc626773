# infergate — see README.md. Two commands matter: `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
# The pinned BPF compiler: Debian bookworm's clang 14. CI regenerates with it
# and fails when committed objects differ.
CLANG ?= clang-14
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN := bin
TEST_TIMEOUT ?= 25m
# go-nvml's cgo part includes an nvml.h that marks hundreds of functions
# deprecated; every build printed a warning for each. The project has no C
# of its own built through cgo (its BPF C is compiled by clang in generate,
# with warnings on), so this flag reaches go-nvml's build alone.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations
export GOFLAGS ?= -mod=mod

.PHONY: all generate build test bench bench-sched demo fuzz clean check-generated image

all: build

generate:
	./scripts/deps.sh generate
	BPF2GO_CC=$(CLANG) BPF2GO_STRIP=llvm-strip-14 $(GO) generate ./loader/...

build:
	mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/infergate ./cmd/infergate
	$(GO) build -o $(BIN)/mockllm ./test/mockllm/cmd/mockllm 2>/dev/null || true

# Privileged tests run when root; with INFERGATE_REQUIRE_PRIVILEGED=1 (CI) a
# test that would skip for lack of privileges fails instead.
# The suite goes through test/testreport: package results, failing tests'
# output, and at the end every skipped test with its reason and a count.
test:
	./scripts/deps.sh test
	./scripts/kube-apiserver.sh >/dev/null || echo "kube-apiserver not built: the tests that need it skip (or fail under INFERGATE_REQUIRE_PRIVILEGED=1)" >&2
	$(GO) vet ./...
	mkdir -p $(BIN)
	$(GO) build -o $(BIN)/testreport ./test/testreport
	set -o pipefail; $(GO) test -json -count=1 -timeout $(TEST_TIMEOUT) ./... | $(BIN)/testreport

# The agent's OCI image (root, buildah, no base image pulled): an archive
# under build/image and its digest pinned in deploy/kustomization.yaml.
image: build
	./scripts/image.sh

# Benchmarks and long runs; figures go to BENCHMARKS.md.
bench:
	./scripts/deps.sh bench
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

bench-sched:
	$(GO) run ./test/sched -seed 1

# As root: a namespace lab with the real agents, real traffic and a bounded
# flood, a summary, then cleanup. DEMO_HOLD=10m keeps the lab up afterwards.
demo:
	./scripts/deps.sh demo
	$(MAKE) build
	./scripts/demo.sh

check-generated: generate
	git diff --exit-code -- loader/*_bpfel.go loader/*_bpfel.o || { echo "generated eBPF objects are stale: run make generate and commit"; exit 1; }
	test -z "$$(git status --porcelain -- "loader/*_bpfel.*")" || { git status --porcelain -- "loader/*_bpfel.*"; echo "untracked generated files"; exit 1; }

clean:
	rm -rf $(BIN)
