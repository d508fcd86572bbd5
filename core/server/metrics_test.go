package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the admin listener's /metrics as Prometheus would.
func scrape(t *testing.T, srv *Server) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + srv.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	return fams
}

// metricValue sums the samples of name whose labels include want (a
// histogram gives its count).
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (sum float64, n int) {
	f := fams[name]
	if f == nil {
		return 0, 0
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		n++
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum, n
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// Requests, their status classes, picks, upstream connections, health,
// module calls and reloads all show on /metrics with the values the test
// caused; what a reload removes stops being exported; paths and hosts of
// requests never become labels.
func TestMetrics(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/fail") {
			w.WriteHeader(500)
			return
		}
		w.Write([]byte("b\n"))
	}))
	dir := t.TempDir()
	conf := func(backends string) string {
		return fmt.Sprintf(`
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [{host: example.com, pool: p}, {host: "*.example.com", path_prefix: /api, pool: p}]
pools:
  p:
    policy: round_robin
    health: {passive: {disable: true}}
    backends: %s
admin: {address: "127.0.0.1:0"}
`, backends)
	}
	both := fmt.Sprintf("[{address: %s}, {address: %s}]", a.addr, b.addr)
	_, srv := startProxyIn(t, dir, conf(both))
	addr := srv.Addrs()[0]
	send := func(host, path string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 40 {
		send("example.com", fmt.Sprintf("/page/%d", i)) // 20 to each backend
	}
	for i := range 10 {
		send(fmt.Sprintf("h%d.example.com", i), "/api/fail") // 5 each; b answers 500
	}
	for i := range 7 {
		if st := send(fmt.Sprintf("other%d.org", i), "/"); st != 404 {
			t.Fatalf("no route: %d", st)
		}
	}

	fams := scrape(t, srv)
	check := func(name string, want map[string]string, value float64) {
		t.Helper()
		if got, _ := metricValue(fams, name, want); got != value {
			t.Errorf("%s%v = %v, want %v", name, want, got, value)
		}
	}
	exact := labels("listener", "web", "route", "example.com/", "pool", "p")
	wild := labels("listener", "web", "route", "*.example.com/api", "pool", "p")
	exact["backend"], exact["code"] = a.addr, "2xx"
	check("wproxy_http_requests_total", exact, 20)
	check("wproxy_http_request_duration_seconds", exact, 20)
	exact["backend"] = b.addr
	check("wproxy_http_requests_total", exact, 20)
	wild["code"] = "5xx"
	check("wproxy_http_requests_total", wild, 5)
	wild["code"] = "2xx"
	check("wproxy_http_requests_total", wild, 5) // a answers /api/fail with 200
	check("wproxy_http_requests_total", labels("listener", "web", "route", "", "code", "4xx"), 7)
	check("wproxy_backend_picks_total", labels("pool", "p"), 50)
	check("wproxy_backend_picks_total", labels("pool", "p", "backend", a.addr), 25)
	check("wproxy_module_calls_total", labels("pool", "p", "module", "round_robin", "kind", "balancer"), 50)
	check("wproxy_module_call_failures_total", labels("pool", "p"), 0)
	check("wproxy_module_instances", labels("pool", "p", "kind", "balancer"), 1)
	check("wproxy_backend_health", labels("pool", "p", "backend", a.addr, "state", "up"), 1)
	check("wproxy_backend_health", labels("pool", "p", "backend", a.addr, "state", "down"), 0)
	check("wproxy_pool_panic", labels("pool", "p"), 0)
	check("wproxy_reloads_total", labels("result", "ok"), 0)
	check("wproxy_config_last_reload_successful", nil, 1)
	created, _ := metricValue(fams, "wproxy_upstream_connections_created_total", labels("pool", "p"))
	reused, _ := metricValue(fams, "wproxy_upstream_connection_reuses_total", labels("pool", "p"))
	if created < 2 || created+reused != 50 {
		t.Errorf("upstream connections: %v created, %v reuses; want at least 2 and 50 requests in all", created, reused)
	}
	idle, _ := metricValue(fams, "wproxy_upstream_connections", labels("pool", "p", "state", "idle"))
	if idle < 2 || idle > created {
		t.Errorf("idle upstream connections: %v of %v", idle, created)
	}
	if _, n := metricValue(fams, "go_goroutines", nil); n != 1 {
		t.Error("the Go runtime's metrics are missing")
	}
	// Labels come from the configuration only: 57 requests with distinct
	// paths and hosts made 5 request series: a's 2xx on two routes, b's
	// 2xx on one and 5xx on the other, and the unrouted 4xx.
	if _, n := metricValue(fams, "wproxy_http_requests_total", nil); n != 5 {
		t.Errorf("%d request series, want 5", n)
	}

	// A reload that removes b: b's series go; a bad reload is counted.
	os.WriteFile(filepath.Join(dir, "test.yaml"), []byte(conf(fmt.Sprintf("[{address: %s}]", a.addr))), 0o644)
	if err := srv.ReloadFile(t.Context()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "test.yaml"), []byte("listeners: ["), 0o644)
	if srv.ReloadFile(t.Context()) == nil {
		t.Fatal("a bad file was accepted")
	}
	send("example.com", "/")
	fams = scrape(t, srv)
	for _, name := range []string{"wproxy_http_requests_total", "wproxy_backend_picks_total", "wproxy_upstream_connections_created_total", "wproxy_backend_health"} {
		if _, n := metricValue(fams, name, labels("backend", b.addr)); n != 0 {
			t.Errorf("%s still has %d series of the removed backend", name, n)
		}
	}
	exact["backend"] = a.addr
	check("wproxy_http_requests_total", exact, 21) // counters carry over the reload
	check("wproxy_reloads_total", labels("result", "ok"), 1)
	check("wproxy_reloads_total", labels("result", "rejected"), 1)
	check("wproxy_config_last_reload_successful", nil, 0)
}
