package backendkit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wproxy/wproxy/policies-wasm/load_aware/loadaware"
)

// fixed returns a Sampler whose Figures are f, whatever it measures.
func fixed(t *testing.T, f Figures) *Sampler {
	t.Helper()
	return newSampler(t, SamplerConfig{Adjust: func(Figures) Figures { return f }})
}

// get sends a request to h through a real listener and returns the status,
// the Content-Type and the body.
func get(t *testing.T, h http.Handler, method string) (int, http.Header, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(method, srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestHealthHandler(t *testing.T) {
	refused := errors.New("connection refused")
	tests := []struct {
		name string
		f    Figures
		cfg  HealthConfig
		code int
		body string
	}{
		{
			name: "ok with defaults",
			f:    Figures{CPU: 0.12, Memory: 0.3, InFlight: 3},
			code: 200,
			body: `{"status":"ok","cpu":0.12,"mem":0.3,"inflight":3}`,
		},
		{
			name: "at the thresholds is still ok",
			f:    Figures{CPU: 0.95, Memory: 0.9, InFlight: 10},
			cfg:  HealthConfig{MaxInFlight: 10},
			code: 200,
			body: `{"status":"ok","cpu":0.95,"mem":0.9,"inflight":10}`,
		},
		{
			name: "cpu above the default",
			f:    Figures{CPU: 0.97, Memory: 0.3},
			code: 503,
			body: `{"status":"unhealthy","reasons":["cpu 0.97 above 0.95"],"cpu":0.97,"mem":0.3,"inflight":0}`,
		},
		{
			name: "cpu just above the default shows the digits that differ",
			f:    Figures{CPU: 0.95012345, Memory: 0.3},
			code: 503,
			body: `{"status":"unhealthy","reasons":["cpu 0.9501 above 0.95"],"cpu":0.9501,"mem":0.3,"inflight":0}`,
		},
		{
			name: "memory above the default",
			f:    Figures{CPU: 0.1, Memory: 0.93456},
			code: 503,
			body: `{"status":"unhealthy","reasons":["mem 0.93 above 0.9"],"cpu":0.1,"mem":0.9346,"inflight":0}`,
		},
		{
			name: "memory past the limit",
			f:    Figures{Memory: 1.5},
			code: 503,
			body: `{"status":"unhealthy","reasons":["mem 1.50 above 0.9"],"cpu":0,"mem":1.5,"inflight":0}`,
		},
		{
			name: "configured thresholds",
			f:    Figures{CPU: 0.6, Memory: 0.6, InFlight: 4},
			cfg:  HealthConfig{MaxCPU: 0.5, MaxMemory: 0.7, MaxInFlight: 3},
			code: 503,
			body: `{"status":"unhealthy","reasons":["cpu 0.60 above 0.5","inflight 4 above 3"],"cpu":0.6,"mem":0.6,"inflight":4}`,
		},
		{
			name: "in flight without a limit",
			f:    Figures{InFlight: 100000},
			code: 200,
			body: `{"status":"ok","cpu":0,"mem":0,"inflight":100000}`,
		},
		{
			name: "a limit above 1 turns a threshold off",
			f:    Figures{CPU: 1, Memory: 1.5},
			cfg:  HealthConfig{MaxCPU: 1, MaxMemory: 100},
			code: 200,
			body: `{"status":"ok","cpu":1,"mem":1.5,"inflight":0}`,
		},
		{
			name: "checks pass",
			f:    Figures{CPU: 0.1},
			cfg: HealthConfig{Checks: map[string]func(context.Context) error{
				"db":    func(context.Context) error { return nil },
				"cache": func(context.Context) error { return nil },
			}},
			code: 200,
			body: `{"status":"ok","cpu":0.1,"mem":0,"inflight":0}`,
		},
		{
			name: "every reason, checks by name",
			f:    Figures{CPU: 0.99, Memory: 0.95, InFlight: 2},
			cfg: HealthConfig{MaxInFlight: 1, CheckTimeout: 50 * time.Millisecond, Checks: map[string]func(context.Context) error{
				"db":    func(context.Context) error { return refused },
				"boom":  func(context.Context) error { panic("kaboom") },
				"ok":    func(context.Context) error { return nil },
				"slow":  func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
				"cache": func(context.Context) error { return errors.New("miss") },
			}},
			code: 503,
			body: `{"status":"unhealthy","reasons":["cpu 0.99 above 0.95","mem 0.95 above 0.9","inflight 2 above 1",` +
				`"check boom: panic: kaboom","check cache: miss","check db: connection refused","check slow: timed out after 50ms"],` +
				`"cpu":0.99,"mem":0.95,"inflight":2}`,
		},
		{
			name: "not a number is no figure",
			f:    Figures{CPU: math.NaN(), Memory: math.Inf(1)},
			cfg:  HealthConfig{MaxMemory: math.Inf(1)},
			code: 200,
			body: `{"status":"ok","cpu":0,"mem":0,"inflight":0}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fixed(t, tt.f).HealthHandler(tt.cfg)
			code, header, body := get(t, h, http.MethodGet)
			if code != tt.code || body != tt.body+"\n" {
				t.Fatalf("GET: %d %s\nwant %d %s", code, body, tt.code, tt.body)
			}
			if ct := header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			code, header, body = get(t, h, http.MethodHead)
			if code != tt.code || body != "" || header.Get("Content-Type") != "application/json" {
				t.Fatalf("HEAD: %d %q %v", code, body, header)
			}
		})
	}
}

// A check that ignores its context does not hold up the answer past
// CheckTimeout.
func TestHealthCheckIgnoringContext(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := fixed(t, Figures{}).HealthHandler(HealthConfig{
		CheckTimeout: 20 * time.Millisecond,
		Checks:       map[string]func(context.Context) error{"stuck": func(context.Context) error { <-release; return nil }},
	})
	code, _, body := get(t, h, http.MethodGet)
	want := `{"status":"unhealthy","reasons":["check stuck: timed out after 20ms"],"cpu":0,"mem":0,"inflight":0}` + "\n"
	if code != 503 || body != want {
		t.Fatalf("%d %s\nwant 503 %s", code, body, want)
	}
}

func TestLoadHandler(t *testing.T) {
	tests := []struct {
		name string
		f    Figures
		max  int64
		body string
	}{
		{"idle", Figures{}, 0, `{"load":0,"cpu":0,"mem":0,"inflight":0}`},
		{"cpu counts", Figures{CPU: 0.42, Memory: 0.31, InFlight: 12}, 0, `{"load":0.42,"cpu":0.42,"mem":0.31,"inflight":12}`},
		{"mem counts", Figures{CPU: 0.2, Memory: 0.6}, 0, `{"load":0.6,"cpu":0.2,"mem":0.6,"inflight":0}`},
		{"in flight without a maximum does not count", Figures{CPU: 0.1, InFlight: 500}, 0, `{"load":0.1,"cpu":0.1,"mem":0,"inflight":500}`},
		{"in flight with a maximum", Figures{CPU: 0.1, Memory: 0.2, InFlight: 5}, 10, `{"load":0.5,"cpu":0.1,"mem":0.2,"inflight":5}`},
		{"overloaded", Figures{CPU: 0.1, InFlight: 30}, 10, `{"load":3,"cpu":0.1,"mem":0,"inflight":30}`},
		{"at most 100", Figures{InFlight: 1e6}, 1, `{"load":100,"cpu":0,"mem":0,"inflight":1000000}`},
		{"rounded", Figures{CPU: 0.123456, Memory: 0.0000149}, 0, `{"load":0.1235,"cpu":0.1235,"mem":0,"inflight":0}`},
		{"NaN is 0", Figures{CPU: math.NaN(), Memory: math.NaN()}, 0, `{"load":0,"cpu":0,"mem":0,"inflight":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fixed(t, tt.f).LoadHandler(LoadConfig{MaxInFlight: tt.max})
			code, header, body := get(t, h, http.MethodGet)
			if code != 200 || body != tt.body+"\n" || header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s %v\nwant 200 %s", code, body, header, tt.body)
			}
			// wproxy's load_aware policy reads the same load.
			var b loadBody
			if err := json.Unmarshal([]byte(body), &b); err != nil {
				t.Fatal(err)
			}
			got, ok := loadaware.ParseLoad([]byte(body))
			if !ok || got != b.Load {
				t.Fatalf("load_aware reads %v, %v; want %v", got, ok, b.Load)
			}
		})
	}
}

// Only GET and HEAD are answered.
func TestHandlersRefuseOtherMethods(t *testing.T) {
	s := fixed(t, Figures{})
	for name, h := range map[string]http.Handler{
		"health": s.HealthHandler(HealthConfig{}),
		"load":   s.LoadHandler(LoadConfig{}),
	} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			code, header, _ := get(t, h, m)
			if code != http.StatusMethodNotAllowed || header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q", name, m, code, header.Get("Allow"))
			}
		}
	}
}

// The health and load handlers behind the same Sampler's Track leave their
// own request out of the count in flight, but not the others.
func TestHandlersDoNotCountThemselves(t *testing.T) {
	s := newSampler(t, SamplerConfig{})
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/health", s.HealthHandler(HealthConfig{MaxInFlight: 1}))
	mux.Handle("/load", s.LoadHandler(LoadConfig{MaxInFlight: 1000}))
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) { <-release })
	srv := httptest.NewServer(s.Track(mux))
	defer srv.Close()
	fetch := func(path string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := fetch("/load"); !strings.Contains(got, `"inflight":0}`) {
		t.Fatalf("idle /load: %s", got)
	}
	var wg sync.WaitGroup
	wg.Go(func() { fetch("/block") })
	await(t, "the blocked request", func() bool { return s.Figures().InFlight == 1 })
	if got := fetch("/load"); !strings.Contains(got, `"inflight":1}`) {
		t.Fatalf("/load with one request in flight: %s", got)
	}
	if got := fetch("/health"); !strings.HasPrefix(got, `{"status":"ok"`) {
		t.Fatalf("/health with one request in flight, at most 1: %s", got)
	}
	close(release)
	wg.Wait()
}

func TestHandlerConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  HealthConfig
		want []string
	}{
		{HealthConfig{}, nil},
		{HealthConfig{MaxCPU: math.Inf(1), MaxMemory: 2, MaxInFlight: 9, CheckTimeout: time.Second}, nil},
		{HealthConfig{MaxCPU: -0.1}, []string{"max cpu: -0.1 is not"}},
		{HealthConfig{MaxCPU: math.NaN(), MaxMemory: -1, MaxInFlight: -1, CheckTimeout: -1}, []string{
			"max cpu: NaN", "max memory: -1", "max in flight: -1 is negative", "check timeout: -1ns is negative",
		}},
		{HealthConfig{Checks: map[string]func(context.Context) error{"db": nil}}, []string{`checks["db"]: nil function`}},
	}
	s := fixed(t, Figures{})
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%+v: %v", tt.cfg, err)
			}
			continue
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %v, want it to contain %q", tt.cfg, err, w)
			}
		}
		func() {
			defer func() {
				if p := recover(); p == nil || !strings.Contains(p.(string), tt.want[0]) {
					t.Errorf("%+v: HealthHandler panicked with %v", tt.cfg, p)
				}
			}()
			s.HealthHandler(tt.cfg)
		}()
	}
	bad := LoadConfig{MaxInFlight: -2}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "max in flight: -2 is negative") {
		t.Errorf("LoadConfig.Validate: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("LoadHandler accepted a negative MaxInFlight")
		}
	}()
	s.LoadHandler(bad)
}
