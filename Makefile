# edged build, test and packaging. `make help` lists the targets.
GO        ?= go
PKGS      ?= ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -buildid= -X github.com/edgedio/edged/internal/version.Version=$(VERSION)
BIN       := bin

.PHONY: all build test test-integration test-race test-short test-deps test-check conformance bench bench-engine bench-e2e fuzz lint depcheck cross test-arm chaos chaos-failover clean help

all: build

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build bin/edged and bin/edgectl for this machine
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/edged ./cmd/edged
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/edgectl ./cmd/edgectl

test: test-check lint depcheck ## lint, dependency rules, then every test (with the real-server integration tests) under the race detector; fails when a server is missing (make test-deps)
	$(GO) test -race -count=1 -tags integration $(GOTESTFLAGS) $(PKGS)

test-integration: test-check ## only the tests that need real servers (mosquitto, versitygw)
	$(GO) test -race -count=1 -tags integration -run Integration $(GOTESTFLAGS) $(PKGS)

test-short: ## quick: no race detector, no integration tests; tests needing real servers or the built binary skip (-short), saying so
	$(GO) test -short -count=1 $(GOTESTFLAGS) $(PKGS)
	@echo "make test-short: integration tests and real-server tests were not run; make test runs them"

test-deps: ## install what make test needs (mosquitto, versitygw, ...; scripts/test/install.sh, needs root for apt)
	bash scripts/test/install.sh

# test-check stops make test early, with the install command, when a server
# the tests start is missing (the tests themselves fail the same way).
test-check:
	@bash scripts/test/install.sh --check

conformance: ## the Spark conformance vectors (CONFORMANCE_VECTORS=file to replace them)
	$(GO) test -count=1 ./engine/conformance -run 'TestSparkVectors' -v

bench: ## every benchmark, with allocations
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

bench-engine: ## the engine's headline benchmarks
	$(GO) test -run '^$$' -bench 'KeyedTumblingAggregate|SlidingWindow|DecodeJSON' -benchmem ./engine/...

bench-flash: ## flash wear: bytes written per message at 500 msg/s, QoS 0 and 1, by /proc write_bytes (FLASH_ARGS="--window" for one window pipeline)
	bash scripts/bench/flash.sh $(FLASH_ARGS)

bench-e2e: ## MQTT end to end, to the last window output: bare paho subscriber vs edged (mosquitto, embedded broker, QoS 1 drain, sliding, catch-up) (MESSAGES=n, default 1000000; ROUNDS=n QoS 0 rounds, default 3)
	bash scripts/bench/mqtt.sh $(if $(MESSAGES),--messages $(MESSAGES)) $(if $(ROUNDS),--rounds $(ROUNDS))

FUZZTIME ?= 20s
fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p; \
	  done; done

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

depcheck: ## enforce the package dependency rules of DESIGN.md
	$(GO) test -count=1 ./internal/depcheck

chaos: ## crash harness: SIGKILL edged 20 times over 200k records, compare with an uninterrupted run (SEED=n, SOURCE=file|mqtt|embedded, PIPELINE=dstream|events)
	bash scripts/chaos/crash.sh $(if $(SEED),--seed $(SEED)) $(if $(SOURCE),--source $(SOURCE)) $(if $(PIPELINE),--pipeline $(PIPELINE))

chaos-failover: ## mesh failover harness: 3 edged + mosquitto, 1,000 sensors, SIGKILL an owner of several partitions and restart it (SEED=n, SHORT=1 for the CI version)
	bash scripts/chaos/failover.sh $(if $(SEED),--seed $(SEED)) $(if $(SHORT),--short)

cross: ## static stripped binaries for linux armv6/armv7/arm64/amd64 in dist/, with sizes
	VERSION=$(VERSION) bash scripts/cross/build.sh

test-arm: ## storage (arm64/armv7/armv6) and engine (arm64/armv7) tests under qemu-user-static
	bash scripts/arm/test.sh

.PHONY: repro size deb test-deb bench-emulated bench-flash
repro: ## build arm64 twice (other path, empty GOCACHE) and compare sha256 (TARGETS="armv7 arm64" for more)
	VERSION=$(VERSION) bash scripts/cross/repro.sh

size: ## what arm64 edged is made of, per section, module and package (TARGET=armv7 BIN=edgectl)
	bash scripts/cross/size.sh

deb: ## Debian packages for armhf (armv6 binary), arm64 and amd64 in dist/
	VERSION=$(VERSION) bash scripts/cross/deb.sh

test-deb: ## build the amd64 .deb, install it here, run edged as the unit would, remove and purge (needs root)
	VERSION=$(VERSION) bash scripts/cross/test-deb.sh

bench-emulated: ## engine throughput under qemu-user for arm64 and armv7 vs amd64 native
	bash scripts/cross/bench-emulated.sh

clean:
	rm -rf $(BIN) dist
