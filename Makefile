# wproxy — see README.md. `make demo` and `make test` are the quickstart.
GO        ?= go
WASM_ENV  := GOOS=wasip1 GOARCH=wasm
WASM_FLAGS := -trimpath -buildvcs=false -buildmode=c-shared -ldflags="-s -w"
POLICIES  := $(patsubst policies-wasm/%/main.go,%,$(wildcard policies-wasm/*/main.go))
BIN       := bin/wproxy

.PHONY: all build wasm test deps bench demo clean fuzz

all: build

build: $(BIN)

$(BIN): FORCE
	$(GO) build -trimpath -o $(BIN) ./cmd/wproxy
FORCE:

# wasm rebuilds the default modules embedded in the binary, reproducibly.
wasm:
	@for p in $(POLICIES); do \
		echo "wasm policies-wasm/wasm/$$p.wasm"; \
		$(WASM_ENV) $(GO) build $(WASM_FLAGS) -o policies-wasm/wasm/$$p.wasm ./policies-wasm/$$p || exit 1; \
	done

# deps installs what tests need beyond Go; quick when all is there.
deps:
	@./scripts/deps.sh

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./hostabi/... ./core/...
	./bench/peers/run.sh

demo:
	$(GO) run ./cmd/wproxy demo

clean:
	rm -rf bin
