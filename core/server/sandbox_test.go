package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/wproxy/wproxy/internal/wat"
)

// A balancing module that traps, loops for ever and answers nonsense on
// three picks in five: every request is still answered by a backend (the
// fallback round robin answers for the module), from concurrent clients,
// and the metrics count each failure and each fallback.
func TestHostileModuleNeverFailsARequest(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hostile.wasm"), wat.Build(t, "testdata/hostile_pick.wat"), 0o644); err != nil {
		t.Fatal(err)
	}
	url, srv := startProxyIn(t, dir, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    policy: hostile.wasm
    health: {passive: {disable: true}}
    backends: [{address: %s}, {address: %s}]
wasm: {pick_budget: 30ms}
admin: {address: "127.0.0.1:0"}
`, a.addr, b.addr))
	const clients, each = 4, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	served := map[string]int{}
	for range clients {
		wg.Go(func() {
			for range each {
				resp, err := http.Get(url + "/")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("status %d", resp.StatusCode)
					return
				}
				mu.Lock()
				served[resp.Header.Get("X-Demo-Backend")]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if served["a"]+served["b"] != clients*each || served["a"] == 0 || served["b"] == 0 {
		t.Fatalf("served %v", served)
	}
	fams := scrape(t, srv)
	pool := labels("pool", "p")
	failures, _ := metricValue(fams, "wproxy_module_call_failures_total", pool)
	fallbacks, _ := metricValue(fams, "wproxy_module_fallbacks_total", pool)
	calls, _ := metricValue(fams, "wproxy_module_calls_total", pool)
	// Three picks in five fail, unless the module was suspended after
	// failing repeatedly: then the fallback answers without a call.
	if failures < 10 || fallbacks < failures || calls < failures {
		t.Fatalf("calls %v, failures %v, fallbacks %v for %d requests", calls, failures, fallbacks, clients*each)
	}
	t.Logf("%d requests: %v calls, %v failures, %v fallbacks; served %v", clients*each, calls, failures, fallbacks, served)
}
