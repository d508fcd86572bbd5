// Package wat builds WebAssembly modules from their text format with wabt's
// wat2wasm, for tests of hand-written (and hostile) modules. The modules are
// built when the tests run, from the .wat sources under testdata, so that no
// binary needs to be kept in step with its source.
package wat

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build compiles the WebAssembly text file at path (relative to the test's
// directory) and returns the module's bytes. It fails the test, never skips
// it, when wat2wasm is missing: `make deps` installs it (package wabt).
// flags go to wat2wasm, e.g. --debug-names.
func Build(tb testing.TB, path string, flags ...string) []byte {
	tb.Helper()
	bin, err := exec.LookPath("wat2wasm")
	if err != nil {
		tb.Fatalf("building %s: wat2wasm (from wabt) is not installed; run `make deps`", path)
	}
	out := filepath.Join(tb.TempDir(), strings.TrimSuffix(filepath.Base(path), ".wat")+".wasm")
	if b, err := exec.Command(bin, append([]string{path, "-o", out}, flags...)...).CombinedOutput(); err != nil {
		tb.Fatalf("wat2wasm %s: %v\n%s", path, err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return wasm
}
