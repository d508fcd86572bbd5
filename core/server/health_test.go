package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wproxy/wproxy/core/admin"
	"github.com/wproxy/wproxy/internal/gowasm"
)

// healthBackend answers /health with a status and body the test sets, and
// counts the other requests it serves.
type healthBackend struct {
	*backend
	status atomic.Int32
	body   atomic.Value // string
	served atomic.Int64
}

func startHealthBackend(t *testing.T, name string) *healthBackend {
	hb := &healthBackend{}
	hb.status.Store(200)
	hb.body.Store(`{"status":"ok"}`)
	hb.backend = startBackend(t, name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(int(hb.status.Load()))
			io.WriteString(w, hb.body.Load().(string))
			return
		}
		hb.served.Add(1)
		w.Header().Set("X-Demo-Backend", name)
		io.WriteString(w, name)
	}))
	return hb
}

func healthYAML(health string, weights []int, bs ...*healthBackend) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "listeners: [{address: \"127.0.0.1:0\", routes: [{pool: p}]}]\nadmin: {address: \"127.0.0.1:0\"}\npools:\n  p:\n    health: %s\n    backends:\n", health)
	for i, b := range bs {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		fmt.Fprintf(&sb, "      - {address: %s, weight: %d}\n", b.addr, w)
	}
	fmt.Fprintf(&sb, "wasm: {cache_dir: %s}\n", gowasm.CacheDir())
	return sb.String()
}

func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s did not happen within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func balanced(srv *Server, addr string) bool {
	for _, b := range srv.Pool("p").Backends() {
		if b.Address == addr {
			return true
		}
	}
	return false
}

func sendN(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		resp, body := get(t, http.DefaultClient, url+"/")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		seen[body]++
	}
	return seen
}

// A backend whose health endpoint answers 503 goes out within fall
// intervals and gets no requests; when it answers 200 again it comes back
// within rise intervals.
func TestActiveChecks(t *testing.T) {
	a, b, c := startHealthBackend(t, "a"), startHealthBackend(t, "b"), startHealthBackend(t, "c")
	url, srv := startProxy(t, healthYAML("{active: {interval: 50ms, timeout: 40ms, rise: 2, fall: 2}}", nil, a, b, c))
	if got := sendN(t, url, 30); got["b"] != 10 {
		t.Fatalf("healthy: %v", got)
	}
	b.status.Store(503)
	out := waitFor(t, "b leaving the pool", func() bool { return !balanced(srv, b.addr) })
	t.Logf("b answered 503 and left the pool after %s (interval 50ms, fall 2)", out)
	if got := sendN(t, url, 30); got["b"] != 0 || got["a"]+got["c"] != 30 {
		t.Fatalf("with b down: %v", got)
	}
	b.status.Store(200)
	back := waitFor(t, "b coming back", func() bool { return balanced(srv, b.addr) })
	t.Logf("b answered 200 and came back after %s (rise 2)", back)
	if got := sendN(t, url, 30); got["b"] != 10 {
		t.Fatalf("after recovery: %v", got)
	}
}

// Every probe of a misconfigured health path answers 404: all backends look
// down, the pool enters panic mode and keeps serving every request; the
// admin API shows it, and it is logged once.
func TestPanicModeKeepsServing(t *testing.T) {
	var logs syncBuffer
	a, b := startHealthBackend(t, "a"), startHealthBackend(t, "b")
	a.status.Store(404)
	b.status.Store(404)
	cfgText := healthYAML("{active: {interval: 30ms, timeout: 20ms, rise: 1, fall: 1}}", nil, a, b)
	url, srv := startProxyLogged(t, cfgText, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	waitFor(t, "panic mode", srv.Pool("p").InPanic)
	failed := 0
	for range 200 {
		resp, err := http.Get(url + "/")
		if err != nil || resp.StatusCode != 200 {
			failed++
		}
		if resp != nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if failed != 0 {
		t.Fatalf("%d of 200 requests failed in panic mode", failed)
	}
	time.Sleep(100 * time.Millisecond) // more probes, still failing
	if n := strings.Count(logs.String(), "panic mode:"); n != 1 {
		t.Fatalf("panic mode logged %d times, want once:\n%s", n, logs.String())
	}
	st := adminPools(t, srv)
	if !st[0].Panic || st[0].Members[0].Health != "down" || !st[0].Members[0].Balanced {
		t.Fatalf("admin status %+v", st[0])
	}
	// Health recovers: panic mode ends.
	a.status.Store(200)
	b.status.Store(200)
	waitFor(t, "the end of panic mode", func() bool { return !srv.Pool("p").InPanic() })
	if !strings.Contains(logs.String(), "panic mode over") {
		t.Fatalf("the end of panic mode was not logged:\n%s", logs.String())
	}
}

// Passive checks eject a backend answering 500 after 5 failures in a row,
// for base_ejection, and re-admit it after; at most max_ejected_percent of
// the backends are out at once.
func TestPassiveEjection(t *testing.T) {
	a, b, c := startHealthBackend(t, "a"), startHealthBackend(t, "b"), startHealthBackend(t, "c")
	var failing atomic.Bool
	failing.Store(true)
	bad := startBackend(t, "bad", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "broken", 500)
			return
		}
		io.WriteString(w, "bad")
	}))
	badHB := &healthBackend{backend: bad}
	url, srv := startProxy(t, healthYAML("{passive: {base_ejection: 300ms, max_ejection: 1s}}", nil, a, b, c, badHB))
	var fives int
	for range 40 {
		resp, _ := get(t, http.DefaultClient, url+"/")
		if resp.StatusCode == 500 {
			fives++
		}
	}
	if fives != 5 {
		t.Fatalf("%d answers of 500 before the ejection, want 5", fives)
	}
	if balanced(srv, bad.addr) {
		t.Fatal("the failing backend is still balanced over")
	}
	failing.Store(false)
	back := waitFor(t, "re-admission", func() bool { return balanced(srv, bad.addr) })
	t.Logf("re-admitted %s after the ejection began", back)
}

// At most max_ejected_percent of the backends are ejected at once.
func TestPassiveEjectionCap(t *testing.T) {
	broken := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "broken", 500) })
	x := &healthBackend{backend: startBackend(t, "x", broken)}
	y := &healthBackend{backend: startBackend(t, "y", broken)}
	z := startHealthBackend(t, "z")
	_, srv := startProxy(t, healthYAML("{passive: {max_ejected_percent: 34}}", nil, x, y, z))
	url := "http://" + srv.Addrs()[0]
	for range 60 {
		get(t, http.DefaultClient, url+"/")
	}
	if n := len(srv.Pool("p").Backends()); n != 2 {
		t.Fatalf("%d backends balanced over; with 34%% of 3 only one may be ejected", n)
	}
}

// The example evaluator reads {"cpu":0.93} from the health body: degraded,
// the backend keeps a quarter of its weight.
func TestEvaluatorDegradesBackend(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/cpu_mem.wasm", gowasm.Build(t, "./examples/health/go/cpu_mem"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b := startHealthBackend(t, "a"), startHealthBackend(t, "b")
	b.body.Store(`{"cpu":0.93,"mem":0.41}`)
	url, srv := startProxyIn(t, dir, healthYAML(`{active: {interval: 30ms, timeout: 20ms, evaluator: cpu_mem.wasm, evaluator_config: {degraded_above: 0.9}}}`, []int{4, 4}, a, b))
	waitFor(t, "b degraded", func() bool { return adminPools(t, srv)[0].Members[1].Health == "degraded" })
	got := sendN(t, url, 500)
	// Weights 4 and 4 × 25% = 1: b gets a fifth.
	if got["b"] != 100 || got["a"] != 400 {
		t.Fatalf("requests %v, want a:400 b:100", got)
	}
	b.body.Store(`{"cpu":0.20,"mem":0.41}`)
	waitFor(t, "b healthy", func() bool { return adminPools(t, srv)[0].Members[1].Health == "up" })
}

func TestAdminPools(t *testing.T) {
	a, b := startHealthBackend(t, "a"), startHealthBackend(t, "b")
	url, srv := startProxy(t, healthYAML("{}", []int{2, 1}, a, b))
	sendN(t, url, 30)
	resp, err := http.Get("http://" + srv.AdminAddr() + "/pools")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st []admin.PoolStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	p := st[0]
	if p.Name != "p" || p.Policy != "round_robin" || p.Panic || len(p.Members) != 2 || p.Availability != 1 {
		t.Fatalf("%+v", p)
	}
	if m := p.Members[0]; m.Address != a.addr || m.Weight != 2 || !m.Balanced || m.Health != "up" || m.Requests != 20 || m.Availability != 1 {
		t.Fatalf("member %+v", m)
	}
}

func adminPools(t *testing.T, srv *Server) []admin.PoolStatus {
	t.Helper()
	return admin.PoolsStatus(srv.Pools(), time.Now())
}

func startProxyLogged(t *testing.T, yaml string, logger *slog.Logger) (string, *Server) {
	t.Helper()
	cfg := parseConfig(t, t.TempDir(), yaml)
	srv, err := Build(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return "http://" + srv.Addrs()[0], srv
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// One probe per backend per interval, however many routes use the pool.
func TestOneProbePerInterval(t *testing.T) {
	var probes atomic.Int64
	b := startBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			probes.Add(1)
		}
	}))
	startProxy(t, fmt.Sprintf(`
listeners:
  - {address: "127.0.0.1:0", routes: [{pool: p}, {path_prefix: /api, pool: p}, {host: x.example, pool: p}]}
  - {address: "127.0.0.1:0", routes: [{pool: p}]}
pools:
  p:
    health: {active: {interval: 100ms, timeout: 50ms, jitter: 0}}
    backends: [{address: %s}]
wasm: {cache_dir: %s}
`, b.addr, gowasm.CacheDir()))
	time.Sleep(1050 * time.Millisecond)
	// The first probe comes within a quarter interval, then at most one per
	// 100 ms: never more than 11 (fewer on a busy machine).
	if n := probes.Load(); n < 3 || n > 11 {
		t.Fatalf("%d probes in about 1 s with a 100 ms interval", n)
	}
}
