package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/internal/gowasm"
)

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(gowasm.Root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The README's Go policy is examples/policies/go/sticky, which the server
// tests build and run.
func TestReadmePolicyIsTheExample(t *testing.T) {
	block := regexp.MustCompile("(?s)```go\n(.*?)```").FindStringSubmatch(readme(t))
	if block == nil {
		t.Fatal("README has no Go block")
	}
	src, err := os.ReadFile(filepath.Join(gowasm.Root(t), "examples/policies/go/sticky/main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(src), block[1]) {
		t.Fatal("README's policy differs from examples/policies/go/sticky/main.go")
	}
}

// The README's example configuration parses, and every configuration field
// is in the README's reference.
func TestReadmeConfigReference(t *testing.T) {
	text := readme(t)
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(text)
	if block == nil {
		t.Fatal("README has no YAML block")
	}
	if _, err := config.Parse([]byte(block[1]), "README.md", t.TempDir()); err != nil {
		t.Fatalf("README's example configuration: %v", err)
	}
	for _, field := range configFields() {
		if !strings.Contains(text, "| `"+field+"` |") {
			t.Errorf("README's reference lacks the field %q", field)
		}
	}
}
