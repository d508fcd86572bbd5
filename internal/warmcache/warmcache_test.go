package warmcache

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wproxy/wproxy/hostabi/lbhost"
	"github.com/wproxy/wproxy/hostabi/wasmhost"
	"github.com/wproxy/wproxy/internal/gowasm"
	policieswasm "github.com/wproxy/wproxy/policies-wasm"
)

func TestWarmCompilationCache(t *testing.T) {
	ctx := context.Background()
	rt, err := wasmhost.New(ctx, wasmhost.Config{CacheDir: gowasm.CacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	root := gowasm.Root(t)
	var (
		mu   sync.Mutex
		mods = map[string][]byte{}
		wg   sync.WaitGroup
	)
	for _, n := range policieswasm.Names() {
		mods[n], _ = policieswasm.Lookup(n)
	}
	for _, pattern := range []string{"hostabi/lbhost/testdata/*/main.go", "examples/policies/go/*/main.go"} {
		files, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, f := range files {
			pkg := "./" + strings.TrimPrefix(filepath.Dir(f), root+"/")
			if strings.HasSuffix(pkg, "/command") {
				continue // built as a command on purpose by its test
			}
			wg.Go(func() {
				b := gowasm.Build(t, pkg)
				mu.Lock()
				mods[pkg] = b
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	for name, wasm := range mods {
		// Modules that fail the ABI checks on purpose are compiled, and
		// cached, before they are checked.
		lbhost.Load(ctx, rt, name, wasm)
	}
	t.Logf("%d modules compiled into %s", len(mods), gowasm.CacheDir())
}
