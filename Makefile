# probekit — build, test, bench, fuzz, demo and packaging for every module present in go.work.
SHELL := /bin/bash
ALL_TOOLS := ptpserver ptpclient twampd twampc stampref stampsend tcpexpose spp
TOOLS := $(foreach t,$(ALL_TOOLS),$(if $(wildcard $(t)/go.mod),$(t)))
MODULES := shared $(TOOLS)
BIN := bin
export CGO_ENABLED := 0
GO ?= go
FUZZTIME ?= 10s

.PHONY: all deps build test test-unit test-lab lint bench fuzz demo packages clean

all: build

deps:
	@scripts/deps.sh

build:
	@mkdir -p $(BIN)
	@for t in $(TOOLS); do \
	  v=$$(scripts/version.sh $$t); \
	  echo "build $$t $$v"; \
	  $(GO) build -trimpath -ldflags "-s -w -X main.version=$$v" -o $(BIN)/$$t ./$$t || exit 1; \
	done

lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet work

test: deps lint build
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 15m work
	@scripts/lab-test.sh

bench:
	@scripts/bench

fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

demo: deps build
	@scripts/demo.sh

packages: build
	@scripts/packages.sh $(TOOLS)

clean:
	rm -rf $(BIN) dist
