# tcpeng: `make test` is the whole test suite; it installs what it needs itself.
# `.ci/run` runs exactly `make test`.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 3s

# The benchmark module (bench/, its own go.mod, with gVisor's netstack) gets a
# smoke run here; `make bench` runs the full comparison (7-10 minutes).
.PHONY: test deps fmt-check vet staticcheck wasm unit kernel integrity integrity-long integrity-wasm fuzz demo bench bench-smoke bench-tun

test: deps fmt-check vet staticcheck wasm unit kernel integrity integrity-wasm fuzz bench-smoke

# System packages and tools the suites use (tshark to check pcap files, ...).
deps:
	./scripts/deps.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change these files (run gofmt -w):"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags simwasm ./host/sim/
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./wasm/...

# The engine as WebAssembly, built fresh from the tree (wasm/guest/tcpeng.wasm,
# never committed). The tests also build their own copy once per run.
wasm:
	$(GO) generate ./wasm/guest

staticcheck:
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags simwasm ./host/sim/

unit:
	$(GO) test -race -count=1 ./...

# tcpeng serve and forward against the Linux kernel at full size, without the
# race detector (under it, unit runs them with 8 MiB): 100 MiB each way through
# socat, plain and with offloads, the same over 5% loss, 1000 connections,
# curl and iperf3 through forward (root; they skip without /dev/net/tun).
kernel:
	$(GO) test -count=1 -run '^Test(Serve|Forward)' ./cmd/tcpeng

demo:
	$(GO) run ./cmd/tcpeng demo

# The integrity suite without the race detector: 615 seeded runs over 21
# impairment profiles, 1 MiB each way, every byte hashed (seconds); `unit` runs
# host/sim under -race with one seed per profile.
integrity:
	$(GO) test -count=1 ./host/sim/

# 10000 seeds of every profile: 210000 runs, about 27 minutes on 2 cores.
integrity-long:
	$(GO) test -count=1 -timeout 0 -run TestIntegrity ./host/sim/ -sim.seeds 10000

# host/sim on the WebAssembly engine (about 15 s).
integrity-wasm: wasm
	$(GO) test -count=1 -tags simwasm ./host/sim/ -sim.wasm $(CURDIR)/wasm/guest/tcpeng.wasm

# A short run of every fuzz target (FUZZTIME each).
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

bench-smoke:
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./...

bench:
	cd bench && $(GO) run ./cmd/bench -runs 5 -readme README.md

# The TUN jobs (root): tcpeng serve against gVisor, tcpeng forward against pasta
# and slirp4netns (about 11 minutes; the tables go into bench/README.md).
bench-tun:
	cd bench && $(GO) run ./tun/cmd/tunbench -runs 3 -readme README.md
