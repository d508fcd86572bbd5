package server

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	if failures < 3 || fallbacks < failures || calls < failures {
		t.Fatalf("calls %v, failures %v, fallbacks %v for %d requests", calls, failures, fallbacks, clients*each)
	}
	t.Logf("%d requests: %v calls, %v failures, %v fallbacks; served %v", clients*each, calls, failures, fallbacks, served)
}

// With fallback none, a request whose pick failed gets 503 with the reason,
// and the others are served: of 20 sequential requests, the module fails
// the picks with sequence numbers 1, 3 and 4 modulo 5.
func TestFallbackNone(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hostile.wasm"), wat.Build(t, "testdata/hostile_pick.wat"), 0o644); err != nil {
		t.Fatal(err)
	}
	url, _ := startProxyIn(t, dir, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    policy: hostile.wasm
    fallback: none
    health: {passive: {disable: true}}
    backends: [{address: %s}, {address: %s}]
wasm: {pick_budget: 30ms}
`, a.addr, b.addr))
	for seq := range 20 {
		resp, err := http.Get(url + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := 200
		if r := seq % 5; r == 1 || r == 3 || r == 4 {
			want = 503
		}
		if resp.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d (%s)", seq, resp.StatusCode, want, body)
		}
		if want == 503 && !strings.Contains(string(body), "the balancing module failed and the pool has no fallback") {
			t.Fatalf("request %d: body %q", seq, body)
		}
	}
}

// A health evaluator that never returns is cut at wasm.call_budget each
// time; the host judges those probes by its built-in rule, so a backend
// answering 503 still leaves the pool and a healthy one stays, and the
// failures are counted.
func TestLoopingEvaluatorFallsBackToBuiltInRule(t *testing.T) {
	a, b := startHealthBackend(t, "a"), startHealthBackend(t, "b")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "loop.wasm"), wat.Build(t, "testdata/loop_evaluator.wat"), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := healthYAML("{active: {interval: 50ms, timeout: 40ms, rise: 1, fall: 1, evaluator: loop.wasm}}", nil, a, b)
	yaml = strings.Replace(yaml, "wasm: {", "wasm: {call_budget: 20ms, ", 1)
	url, srv := startProxyIn(t, dir, yaml)
	b.status.Store(503)
	waitFor(t, "b leaving the pool", func() bool { return !balanced(srv, b.addr) })
	if got := sendN(t, url, 20); got["a"] != 20 {
		t.Fatalf("served %v", got)
	}
	waitFor(t, "4 evaluator failures counted", func() bool {
		failures, _ := metricValue(scrape(t, srv), "wproxy_module_call_failures_total", labels("pool", "p", "kind", "health"))
		return failures >= 4
	})
	if !balanced(srv, a.addr) || balanced(srv, b.addr) {
		t.Fatal("a must stay in the pool and b out")
	}
}
