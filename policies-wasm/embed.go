// Package policieswasm holds wproxy's default modules, compiled to Wasm and
// embedded in the binary. Each subdirectory with a main package is one module,
// built with the Go SDK by `make wasm` into wasm/NAME.wasm; the registry below
// serves them by name, and a test fails when an embedded file is stale.
package policieswasm

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed wasm/*.wasm
var files embed.FS

// Lookup returns the bytes of the default module with the given name, such as
// "round_robin".
func Lookup(name string) ([]byte, bool) {
	if name == "" || strings.ContainsAny(name, "/.\\") {
		return nil, false
	}
	b, err := files.ReadFile("wasm/" + name + ".wasm")
	return b, err == nil
}

// Module kinds.
const (
	KindBalancing = "balancing"
	KindHealth    = "health"
	KindDiscovery = "discovery"
)

// kinds names the modules that are not balancing modules.
var kinds = map[string]string{"health_status": KindHealth, "etcd": KindDiscovery}

// Kind returns the kind of a default module.
func Kind(name string) string {
	if k, ok := kinds[name]; ok {
		return k
	}
	return KindBalancing
}

// NamesOf lists the default modules of one kind, sorted.
func NamesOf(kind string) []string {
	var out []string
	for _, n := range Names() {
		if Kind(n) == kind {
			out = append(out, n)
		}
	}
	return out
}

// LookupDiscovery returns the bytes of the default discovery module with the
// given name, such as "etcd"; other kinds are not found.
func LookupDiscovery(name string) ([]byte, bool) {
	if Kind(name) != KindDiscovery {
		return nil, false
	}
	return Lookup(name)
}

// DiscoveryNames lists the default discovery modules, sorted.
func DiscoveryNames() []string { return NamesOf(KindDiscovery) }

// Names lists the default modules, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, "wasm")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".wasm"))
	}
	sort.Strings(names)
	return names
}
