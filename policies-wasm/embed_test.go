package policieswasm

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/wproxy/wproxy/internal/gowasm"
)

// Every default module is embedded and matches its sources byte for byte:
// run `make wasm` after changing a module, the SDK or the Go toolchain.
func TestEmbeddedModulesAreFresh(t *testing.T) {
	mains, err := filepath.Glob(filepath.Join(gowasm.Root(t), "policies-wasm", "*", "main.go"))
	if err != nil || len(mains) == 0 {
		t.Fatalf("no module sources found: %v", err)
	}
	if len(mains) != len(Names()) {
		t.Errorf("%d module sources but %d embedded modules %v: run make wasm", len(mains), len(Names()), Names())
	}
	for _, m := range mains {
		name := filepath.Base(filepath.Dir(m))
		t.Run(name, func(t *testing.T) {
			embedded, ok := Lookup(name)
			if !ok {
				t.Fatalf("%s is not embedded: run make wasm", name)
			}
			built := gowasm.Build(t, "./policies-wasm/"+name)
			if !bytes.Equal(embedded, built) {
				t.Fatalf("policies-wasm/wasm/%s.wasm (%d bytes) does not match its sources (%d bytes): run make wasm", name, len(embedded), len(built))
			}
		})
	}
}

func TestLookup(t *testing.T) {
	for _, bad := range []string{"", "../embed", "wasm/round_robin", "round_robin.wasm", "nope"} {
		if _, ok := Lookup(bad); ok {
			t.Errorf("Lookup(%q) found something", bad)
		}
	}
	b, ok := Lookup("round_robin")
	if !ok || !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatal("round_robin is not a Wasm module")
	}
	if _, err := os.Stat("wasm/round_robin.wasm"); err != nil {
		t.Fatal(err)
	}
}

// The discovery module etcd is found as one, and never offered as a
// balancing policy or a health evaluator.
func TestDiscoveryKind(t *testing.T) {
	if b, ok := LookupDiscovery("etcd"); !ok || !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatal("etcd is not a discovery module")
	}
	if _, ok := LookupDiscovery("round_robin"); ok {
		t.Fatal("round_robin found as a discovery module")
	}
	if got := DiscoveryNames(); len(got) != 1 || got[0] != "etcd" {
		t.Fatalf("DiscoveryNames() = %v", got)
	}
	for _, kind := range []string{KindBalancing, KindHealth} {
		for _, n := range NamesOf(kind) {
			if n == "etcd" {
				t.Fatalf("etcd listed as a %s module", kind)
			}
		}
	}
}
