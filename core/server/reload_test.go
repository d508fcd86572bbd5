package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wproxy/wproxy/internal/gowasm"
	"github.com/wproxy/wproxy/internal/wat"
	policieswasm "github.com/wproxy/wproxy/policies-wasm"
)

// reloadSetup is a proxy served from a configuration file in dir, with a
// policy module file mod.wasm there, and three backends.
type reloadSetup struct {
	dir      string
	srv      *Server
	url      string
	a, b, c  *backend
	first    []byte // examples/policies/go/first_healthy: everything to the first backend
	rr       []byte // round_robin
	template string
}

func newReloadSetup(t *testing.T) *reloadSetup {
	rs := &reloadSetup{dir: t.TempDir()}
	rs.a, rs.b, rs.c = startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	rs.first = gowasm.Build(t, "./examples/policies/go/first_healthy")
	rs.rr, _ = policieswasm.Lookup("round_robin")
	rs.template = fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
admin: {address: "127.0.0.1:0"}
pools:
  p:
    policy: mod.wasm
    backends: BACKENDS
wasm: {cache_dir: %s, init_budget: 2s}
`, gowasm.CacheDir())
	rs.write(t, rs.first, true)
	cfg := parseConfig(t, rs.dir, rs.config(true))
	cfg.File = filepath.Join(rs.dir, "wproxy.yaml")
	srv, err := Build(context.Background(), cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	rs.srv, rs.url = srv, "http://"+srv.Addrs()[0]
	return rs
}

// config is configuration X (three backends) or Y (the first two).
func (rs *reloadSetup) config(x bool) string {
	bs := fmt.Sprintf("[{address: %s}, {address: %s}, {address: %s}]", rs.a.addr, rs.b.addr, rs.c.addr)
	if !x {
		bs = fmt.Sprintf("[{address: %s}, {address: %s}]", rs.a.addr, rs.b.addr)
	}
	return strings.Replace(rs.template, "BACKENDS", bs, 1)
}

func (rs *reloadSetup) write(t *testing.T, module []byte, x bool) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(rs.dir, "mod.wasm"), module, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rs.dir, "wproxy.yaml"), []byte(rs.config(x)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (rs *reloadSetup) distribution(t *testing.T, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		resp, body := get(t, http.DefaultClient, rs.url+"/")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		seen[resp.Header.Get("X-Demo-Backend")]++
	}
	return seen
}

// 50 reloads alternating two configurations and two versions of the policy
// module, under a steady load of keep-alive and new-connection requests:
// none fails, and the policy in force is the last one loaded.
func TestReloadUnderLoad(t *testing.T) {
	rs := newReloadSetup(t)
	if got := rs.distribution(t, 20); got["a"] != 20 {
		t.Fatalf("first_healthy sends everything to a: %v", got)
	}
	stop := make(chan struct{})
	var (
		wg           sync.WaitGroup
		sent, failed atomic.Int64
		lastErr      atomic.Value
	)
	for i := range 12 {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: i%3 == 0}}
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(rs.url + "/")
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					lastErr.Store(resp.Status)
				}
			}
		})
	}
	for i := range 50 {
		x := i%2 == 0
		module := rs.rr
		if i%2 == 1 {
			module = rs.first
		}
		rs.write(t, module, x)
		if err := rs.srv.ReloadFile(context.Background()); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during 50 reloads; last: %v", failed.Load(), sent.Load(), lastErr.Load())
	}
	t.Logf("%d requests during 50 reloads, none failed", sent.Load())
	// The 50th reload (i = 49) loaded first_healthy over a and b.
	if got := rs.distribution(t, 30); got["a"] != 30 {
		t.Fatalf("after the last reload (first_healthy): %v", got)
	}
	rs.write(t, rs.rr, true)
	if err := rs.srv.ReloadFile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rs.distribution(t, 30); got["a"] != 10 || got["b"] != 10 || got["c"] != 10 {
		t.Fatalf("after reloading round_robin over three: %v", got)
	}
	if ok, rejected := rs.srv.ReloadStats(); ok != 51 || rejected != 0 {
		t.Fatalf("reloads ok %d, rejected %d", ok, rejected)
	}
}

// A bad reload changes nothing: the running configuration keeps serving, the
// error names the cause, and it is counted.
func TestBadReloadChangesNothing(t *testing.T) {
	rs := newReloadSetup(t)
	good := rs.config(true)
	tests := []struct {
		name   string
		config string
		module []byte
		want   string
	}{
		{"invalid yaml", "listeners: [", rs.first, "not valid YAML"},
		{"unknown field", strings.Replace(good, "policy: mod.wasm", "policy: mod.wasm\n    bogus: 1", 1), rs.first, `unknown field "bogus"`},
		{"module does not compile", good, []byte("\x00asm\x01\x00\x00\x00garbage"), "not a valid WebAssembly module"},
		{"module lacks an export", good, gowasm.Build(t, "./hostabi/lbhost/testdata/nomarker"), "missing export wproxy_abi_lb_v1"},
		{"module traps in init", good, gowasm.Build(t, "./core/server/testdata/inittrap"), "wproxy_lb_init"},
		{"module exceeds its memory cap", good, gowasm.Build(t, "./core/server/testdata/initoom"), "wproxy_lb_init: memory near its cap ("},
		{"module never finishes its init", good, wat.Build(t, "../../hostabi/lbhost/testdata/hostile/loop_init.wat"), "wproxy_lb_init: ran past its time budget of 2s"},
		{"wasm settings", strings.Replace(good, "wasm: {", "wasm: {max_memory_mb: 32, ", 1), rs.first, "cannot change without a restart"},
		{"listener address in use", strings.Replace(good, "listeners: [", fmt.Sprintf("listeners: [{address: %q, routes: [{pool: p}]}, ", rs.a.addr), 1), rs.first, "cannot listen"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(rs.dir, "mod.wasm"), tt.module, 0o644)
			os.WriteFile(filepath.Join(rs.dir, "wproxy.yaml"), []byte(tt.config), 0o644)
			// Through the admin API, as an operator would.
			resp, err := http.Post("http://"+rs.srv.AdminAddr()+"/reload", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			var answer struct{ Status, Error string }
			json.NewDecoder(resp.Body).Decode(&answer)
			resp.Body.Close()
			if resp.StatusCode != 422 || answer.Status != "rejected" || !strings.Contains(answer.Error, tt.want) {
				t.Fatalf("POST /reload: %d %+v, want 422 with %q", resp.StatusCode, answer, tt.want)
			}
			t.Logf("rejected: %s", answer.Error)
			// Still first_healthy over the three backends.
			if got := rs.distribution(t, 10); got["a"] != 10 {
				t.Fatalf("after a rejected reload: %v", got)
			}
			if _, rejected := rs.srv.ReloadStats(); rejected != uint64(i+1) {
				t.Fatalf("%d reloads counted as rejected, want %d", rejected, i+1)
			}
		})
	}
	// And a good one is accepted after all that.
	rs.write(t, rs.rr, true)
	if err := rs.srv.ReloadFile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rs.distribution(t, 30); got["b"] != 10 {
		t.Fatalf("after a good reload: %v", got)
	}
}

// Unchanged pools carry over whole: the same pool, backends, health and
// connections.
func TestReloadCarriesOverUnchanged(t *testing.T) {
	rs := newReloadSetup(t)
	rs.distribution(t, 5)
	before := rs.srv.Pool("p")
	conns := before.Members()[0].Conns.Stats()
	// The same configuration and module: everything carries over.
	if err := rs.srv.ReloadFile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rs.srv.Pool("p") != before {
		t.Fatal("an unchanged pool was rebuilt")
	}
	// Another module: a new pool, the same backends and connections.
	rs.write(t, rs.rr, true)
	if err := rs.srv.ReloadFile(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := rs.srv.Pool("p")
	if after == before || after.Members()[0] != before.Members()[0] {
		t.Fatal("the backends did not carry over")
	}
	rs.distribution(t, 6)
	if st := after.Members()[0].Conns.Stats(); st.Created != conns.Created {
		t.Fatalf("connections were not reused: %+v before, %+v after", conns, st)
	}
}
