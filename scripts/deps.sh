#!/usr/bin/env bash
# scripts/deps.sh — install what `make test` needs beyond Go; quick when all
# is there. Run by `make deps`, which `make test` depends on.
#
# The tests need Go and wabt: the Wasm modules they load are built from this
# repository's sources, Go ones with the Go toolchain and WebAssembly text
# ones (hostabi's hand-written and hostile modules) with wabt's wat2wasm; the
# servers they talk to are started by the tests themselves. Tools that later
# tests need (an etcd server, ZooKeeper, whose package brings a Java runtime,
# clang, ...) are listed in DEBIAN_PACKAGES and NPM_PACKAGES as they arrive.
set -euo pipefail

DEBIAN_PACKAGES=(wabt zookeeper etcd-server etcd-client)
NPM_PACKAGES=()

need_go="1.26"
if ! command -v go >/dev/null 2>&1; then
	echo "deps: Go $need_go or later is required (https://go.dev/dl/)" >&2
	exit 1
fi
have_go=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]; then
	echo "deps: Go $need_go or later is required; this is $have_go" >&2
	exit 1
fi

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	echo "deps: installing ${missing[*]}" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
for p in "${NPM_PACKAGES[@]}"; do
	npm ls -g "$p" >/dev/null 2>&1 || npm install -g "$p"
done
# Fetch the Go modules now, so that a missing one is reported here.
go mod download
