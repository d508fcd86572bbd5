# wproxy. `make demo` and `make test` are the quickstart (README.md).
GO         ?= go
WASM_ENV   := GOOS=wasip1 GOARCH=wasm
# The flags of every default module: a WASI reactor, byte-reproducible.
# internal/gowasm uses the same ones, and a test compares the results.
WASM_FLAGS := -trimpath -buildvcs=false -buildmode=c-shared -ldflags="-s -w"
POLICIES   := $(patsubst policies-wasm/%/main.go,%,$(wildcard policies-wasm/*/main.go))
BIN        := bin/wproxy
FUZZTIME   ?= 30s

.PHONY: all build wasm test deps bench bench-go bench-peers bench-reload bench-l4 bench-h2 bench-h3 demo fuzz clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/wproxy
	$(GO) build -trimpath -o $(dir $(BIN))wproxy-zookeeper ./cmd/wproxy-zookeeper

# wasm rebuilds the default modules embedded in the binary.
wasm:
	@for p in $(POLICIES); do \
		echo "wasm policies-wasm/wasm/$$p.wasm"; \
		$(WASM_ENV) $(GO) build $(WASM_FLAGS) -o policies-wasm/wasm/$$p.wasm ./policies-wasm/$$p || exit 1; \
	done

# deps installs what the tests need beyond Go; quick when all is there.
deps:
	@./scripts/deps.sh

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 ./internal/warmcache
	$(GO) test -race -count=1 -timeout 20m ./...

# fuzz runs every fuzz target for FUZZTIME (go test fuzzes one target at a
# time).
FUZZ_TARGETS = \
	./core/config:FuzzParse \
	./core/config:FuzzParseBackendsFile \
	./core/upstream:FuzzReadResponse \
	./core/http1:FuzzFastRequest \
	./core/http1:FuzzLineLimit \
	./hostabi/wire:FuzzDecodeEndpoints \
	./hostabi/wire:FuzzDecodeFetchRequest \
	./hostabi/wire:FuzzDecodeFetchResult \
	./hostabi/wire:FuzzDecodeProbe \
	./hostabi/wasmhost:FuzzInstrument \
	./policies-wasm/internal/flatjson:FuzzParse \
	./policies-wasm/etcd/etcdadapter:FuzzParseRange \
	./policies-wasm/load_aware/loadaware:FuzzParseLoad
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name in $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

bench: bench-go bench-peers

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./hostabi/lbhost ./core/http1 ./core/server

bench-peers:
	./bench/peers/run.sh

bench-reload:
	$(GO) run ./bench/reload

bench-l4:
	./bench/l4/run.sh

bench-h2:
	./bench/h2/run.sh

bench-h3:
	./bench/h3/run.sh

demo:
	$(GO) run ./cmd/wproxy demo

clean:
	rm -rf bin
