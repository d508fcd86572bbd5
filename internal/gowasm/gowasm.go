// Package gowasm builds Go packages into WebAssembly modules the way `make
// wasm` does, for tests that need a real module from source.
package gowasm

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Flags are the go build flags of every module: a WASI reactor, reproducible.
var Flags = []string{"-trimpath", "-buildvcs=false", "-buildmode=c-shared", "-ldflags=-s -w"}

// Root returns the repository root (the directory of go.mod).
func Root(tb testing.TB) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Build compiles the package at pkg (a path relative to the repository root,
// such as "./policies-wasm/round_robin", or an absolute directory) for
// GOOS=wasip1 GOARCH=wasm and returns the module's bytes.
func Build(tb testing.TB, pkg string) []byte {
	tb.Helper()
	return BuildWith(tb, pkg, Flags)
}

// BuildWith is Build with other go build flags, for modules built wrongly on
// purpose.
func BuildWith(tb testing.TB, pkg string, flags []string) []byte {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "module.wasm")
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", out, pkg)
	cmd := exec.Command(goCmd(), args...)
	cmd.Dir = Root(tb)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func goCmd() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// CacheDir is the compilation cache that tests share, so that each module is
// compiled once per machine rather than once per test (compiling a Go module
// takes seconds under the race detector).
func CacheDir() string { return filepath.Join(os.TempDir(), "wproxy-test-wasm-cache") }
