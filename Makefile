# probekit — build, test, bench, fuzz, demo and packaging for whichever tool modules are present.
# A tool is present when <tool>/go.mod exists; it is built once its module root is a main
# package (scripts/tools.sh --main). The logic lives in scripts/, so each step also runs alone.
SHELL := /bin/bash
# The tool list lives once, in scripts/tools.sh.
TOOLS := $(shell scripts/tools.sh)
MODULES := shared $(TOOLS)
GO ?= go
FUZZTIME ?= 10s
export GO

.PHONY: all help deps build test lint fmt vet test-go test-scripts test-lab test-packages \
	bench fuzz demo packages release clean

all: build

help:
	@echo "make build       static binaries of every tool with a main package -> bin/"
	@echo "make test        deps, gofmt, vet, build, go test -race, script/lab/package tests (CI)"
	@echo "make demo        deps, build, then a real measurement on loopback per tool"
	@echo "make bench       scripts/bench (benchmarks of shared packages and tools)"
	@echo "make fuzz        every Fuzz target for FUZZTIME each (default 10s)"
	@echo "make packages    .deb and .rpm per built tool -> dist/"
	@echo "make clean       remove bin/ dist/"
	@echo "tools present:   $(TOOLS)"

deps:
	@scripts/deps.sh

build:
	@scripts/build.sh

# Everything CI checks, with the time of each step (scripts/test.sh).
test:
	@scripts/test.sh

lint: fmt vet

fmt:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet work

test-go:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 6m work

test-scripts:
	@scripts/scripts-test.sh

test-lab:
	@scripts/lab-test.sh

test-packages: build
	@scripts/packages-test.sh

bench:
	@if [ -x scripts/bench ]; then scripts/bench; else echo "bench: scripts/bench not present yet"; fi

fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

demo: deps build
	@scripts/demo.sh

packages: build
	@scripts/packages.sh

# make release TOOL=twampd (HEAD at tag twampd/vX.Y.Z): GOWORK=off build, packages, checksums.
release:
	@scripts/release.sh $(TOOL)

clean:
	rm -rf bin dist
