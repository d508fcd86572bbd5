package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/demo"
	"github.com/wproxy/wproxy/internal/gowasm"
)

// backend is a real HTTP server on loopback for the proxy to balance to.
type backend struct {
	name string
	addr string
	srv  *http.Server
	hits atomic.Int64
}

func startBackend(t *testing.T, name string, h http.Handler) *backend {
	t.Helper()
	return startBackendWith(t, name, h, nil)
}

// startBackendWith lets configure adjust the server before it serves.
func startBackendWith(t *testing.T, name string, h http.Handler, configure func(*http.Server)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String()}
	if h == nil {
		h = demo.Handler(name)
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		h.ServeHTTP(w, r)
	})}
	if configure != nil {
		configure(b.srv)
	}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// proxyFor starts a proxy from a configuration whose pool "p" holds the
// given backends with weights, and returns its base URL.
func proxyFor(t *testing.T, extra string, backends []*backend, weights ...int) (string, *Server) {
	t.Helper()
	var sb strings.Builder
	fmt.Fprintf(&sb, "listeners:\n  - address: 127.0.0.1:0\n    routes: [{pool: p}]\npools:\n  p:\n    backends:\n")
	for i, b := range backends {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		fmt.Fprintf(&sb, "      - address: %s\n        weight: %d\n", b.addr, w)
	}
	sb.WriteString("wasm:\n  cache_dir: " + gowasm.CacheDir() + "\n")
	sb.WriteString(extra)
	return startProxy(t, sb.String())
}

func startProxy(t testing.TB, yaml string) (string, *Server) {
	t.Helper()
	return startProxyIn(t, t.TempDir(), yaml)
}

// startProxyIn starts a proxy whose configuration file lives in dir, where
// relative module paths resolve.
func startProxyIn(t testing.TB, dir, yaml string) (string, *Server) {
	t.Helper()
	cfg := parseConfig(t, dir, yaml)
	srv, err := Build(context.Background(), cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "http://" + srv.Addrs()[0], srv
}

func parseConfig(t testing.TB, dir, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), filepath.Join(dir, "test.yaml"), dir)
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	return cfg
}

func quietLogger() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("WPROXY_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestWeightedRoundRobinSequential(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	url, _ := proxyFor(t, "", []*backend{a, b, c}, 5, 1, 1)
	client := &http.Client{}
	var seq strings.Builder
	for i := 0; i < 21; i++ {
		resp, body := get(t, client, url+"/x")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		name := resp.Header.Get("X-Demo-Backend")
		if !strings.HasPrefix(body, name+" served GET /x") {
			t.Fatalf("body %q does not name backend %q", body, name)
		}
		seq.WriteString(name)
	}
	// Smooth weighted round robin, nginx's order: a a b a c a a.
	if got := seq.String(); got != strings.Repeat("aabacaa", 3) {
		t.Fatalf("sequence %s, want aabacaa three times", got)
	}
}

func TestWeightedRoundRobinConcurrent(t *testing.T) {
	a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
	url, _ := proxyFor(t, "", []*backend{a, b, c}, 5, 1, 1)
	const clients, total = 200, 7000
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs atomic.Int64
	)
	for range clients {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			for next.Add(1) <= total {
				resp, err := client.Get(url + "/")
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if errs.Load() != 0 {
		t.Fatalf("%d requests failed", errs.Load())
	}
	if a.hits.Load() != 5000 || b.hits.Load() != 1000 || c.hits.Load() != 1000 {
		t.Fatalf("hits a=%d b=%d c=%d, want exactly 5000:1000:1000", a.hits.Load(), b.hits.Load(), c.hits.Load())
	}
}

// A backend that refuses connections: a request that cannot be retried
// (POST) gets 502 with the reason, until passive checks eject the backend
// after 5 failures in a row; the other backends keep serving throughout.
func TestBackendDownGives502WithReason(t *testing.T) {
	a, c := startBackend(t, "a", nil), startBackend(t, "c", nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := &backend{name: "dead", addr: ln.Addr().String()}
	ln.Close() // nothing listens there now: connections are refused
	url, _ := proxyFor(t, "", []*backend{a, dead, c})
	var ok, bad int
	for i := 0; i < 30; i++ {
		resp, err := http.Post(url+"/", "text/plain", strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
			ok++
		case 502:
			bad++
			want := "502 Bad Gateway: backend " + dead.addr + ": dial tcp " + dead.addr + ": connect: connection refused\n"
			if string(body) != want {
				t.Fatalf("502 body %q, want %q", body, want)
			}
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	if bad != 5 || ok != 25 {
		t.Fatalf("%d ok, %d bad gateway; want 25 and 5 (ejection after 5 failures)", ok, bad)
	}
}

// Without passive checks, every third request meets the dead backend.
func TestBackendDownWithoutPassiveChecks(t *testing.T) {
	a, c := startBackend(t, "a", nil), startBackend(t, "c", nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := &backend{name: "dead", addr: ln.Addr().String()}
	ln.Close()
	url, _ := startProxy(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    health: {passive: {disable: true}}
    backends: [{address: %s}, {address: %s}, {address: %s}]
wasm: {cache_dir: %s}
`, a.addr, dead.addr, c.addr, gowasm.CacheDir()))
	var bad int
	for i := 0; i < 30; i++ {
		resp, err := http.Post(url+"/", "text/plain", strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 502 {
			bad++
		}
	}
	if bad != 10 {
		t.Fatalf("%d of 30 POSTs got 502, want 10", bad)
	}
	// GETs are idempotent: each that meets the dead backend goes to
	// another, and all succeed.
	for i := 0; i < 30; i++ {
		resp, body := get(t, http.DefaultClient, url+"/")
		if resp.StatusCode != 200 {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
		}
	}
}

func TestBackendDropsConnection(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			c.Close() // read the request line, answer nothing
		}
	}()
	url, _ := proxyFor(t, "", []*backend{{addr: ln.Addr().String()}})
	resp, body := get(t, http.DefaultClient, url+"/")
	if resp.StatusCode != 502 || !strings.Contains(body, "closed the connection before responding") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

func TestUpstreamTimeoutGives504(t *testing.T) {
	slow := startBackend(t, "slow", nil)
	url, _ := proxyFor(t, "timeouts:\n  response_header: 200ms\n", []*backend{slow})
	resp, body := get(t, http.DefaultClient, url+"/slow?ms=3000")
	if resp.StatusCode != 504 || !strings.Contains(body, "did not respond within 200ms") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	// The connection that timed out is not reused; the next request works.
	resp, body = get(t, http.DefaultClient, url+"/fast")
	if resp.StatusCode != 200 {
		t.Fatalf("after a timeout: %d %q", resp.StatusCode, body)
	}
}

func TestNoRouteGives404(t *testing.T) {
	a := startBackend(t, "a", nil)
	url, _ := startProxy(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
    routes:
      - {host: api.example.com, path_prefix: /v1, pool: p}
pools:
  p: {backends: [{address: %s}]}
wasm: {cache_dir: %s}
`, a.addr, gowasm.CacheDir()))
	req, _ := http.NewRequest("GET", url+"/v1/x", nil)
	req.Host = "API.example.com:8080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("matching route: %d", resp.StatusCode)
	}
	req.Host = "other.example.com"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(b), `no route for host "other.example.com" and path "/v1/x"`) {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

func TestRoutesBySpecificity(t *testing.T) {
	api, web, wild, v2 := startBackend(t, "api", nil), startBackend(t, "web", nil), startBackend(t, "wild", nil), startBackend(t, "v2", nil)
	url, _ := startProxy(t, fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
    routes:
      - {pool: web}
      - {host: "*.example.com", pool: wild}
      - {host: api.example.com, pool: api}
      - {host: api.example.com, path_prefix: /v2, pool: v2}
pools:
  web: {backends: [{address: %s}]}
  api: {backends: [{address: %s}]}
  wild: {backends: [{address: %s}]}
  v2: {backends: [{address: %s}]}
wasm: {cache_dir: %s}
`, web.addr, api.addr, wild.addr, v2.addr, gowasm.CacheDir()))
	cases := map[[2]string]string{
		{"api.example.com", "/v2/x"}: "v2",
		{"api.example.com", "/v1"}:   "api",
		{"x.example.com", "/v2"}:     "wild",
		{"example.org", "/"}:         "web",
	}
	for in, want := range cases {
		req, _ := http.NewRequest("GET", url+in[1], nil)
		req.Host = in[0]
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Demo-Backend"); got != want {
			t.Errorf("%v went to %q, want %q", in, got, want)
		}
	}
}

// Headers: hop-by-hop fields are dropped both ways, forwarding fields set.
func TestHeaders(t *testing.T) {
	var got http.Header
	var gotHost string
	b := startBackend(t, "h", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		gotHost = r.Host
		w.Header().Set("Connection", "X-Private")
		w.Header().Set("X-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-End-To-End", "yes")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
	}))
	url, _ := proxyFor(t, "", []*backend{b})
	req, _ := http.NewRequest("GET", url+"/p?q=1", nil)
	req.Host = "shop.example.com"
	req.Header.Set("Connection", "X-Hop, keep-alive")
	req.Header.Set("X-Hop", "drop me")
	req.Header.Set("Proxy-Authorization", "Basic eA==")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("X-Custom", "kept")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotHost != "shop.example.com" {
		t.Errorf("backend saw Host %q", gotHost)
	}
	for k, want := range map[string]string{
		"X-Custom": "kept", "X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Proto": "http",
		"X-Forwarded-Host": "shop.example.com", "X-Hop": "", "Proxy-Authorization": "",
	} {
		if v := got.Get(k); v != want {
			t.Errorf("backend saw %s: %q, want %q", k, v, want)
		}
	}
	for k, want := range map[string]string{"X-Private": "", "Keep-Alive": "", "X-End-To-End": "yes"} {
		if v := resp.Header.Get(k); v != want {
			t.Errorf("client saw %s: %q, want %q", k, v, want)
		}
	}
	if c := resp.Header.Values("Set-Cookie"); len(c) != 2 {
		t.Errorf("Set-Cookie %q", c)
	}
}

// Bodies of many megabytes go both ways without being held whole.
func TestLargeBodiesStream(t *testing.T) {
	b := startBackend(t, "echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Request-Sha", fmt.Sprintf("%x", h.Sum(nil)))
		w.Header().Set("X-Request-Len", fmt.Sprint(n))
		// Answer with 32 MiB of pseudo-random bytes, in chunks.
		rng := rand.NewChaCha8([32]byte{1})
		buf := make([]byte, 64<<10)
		for range 512 {
			rng.Read(buf)
			w.Write(buf)
		}
	}))
	url, _ := proxyFor(t, "", []*backend{b})
	const size = 24 << 20
	for _, chunked := range []bool{false, true} {
		body := io.LimitReader(rand.NewChaCha8([32]byte{2}), size)
		wantReq := sha256.New()
		io.Copy(wantReq, io.LimitReader(rand.NewChaCha8([32]byte{2}), size))
		req, _ := http.NewRequest("POST", url+"/upload", body)
		if !chunked {
			req.ContentLength = size
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.New()
		rng := rand.NewChaCha8([32]byte{1})
		buf := make([]byte, 64<<10)
		for range 512 {
			rng.Read(buf)
			want.Write(buf)
		}
		if n != 32<<20 || string(h.Sum(nil)) != string(want.Sum(nil)) {
			t.Fatalf("chunked=%v: response of %d bytes, checksum mismatch", chunked, n)
		}
		if resp.Header.Get("X-Request-Len") != fmt.Sprint(size) || resp.Header.Get("X-Request-Sha") != fmt.Sprintf("%x", wantReq.Sum(nil)) {
			t.Fatalf("chunked=%v: backend got %s bytes, sha %s", chunked, resp.Header.Get("X-Request-Len"), resp.Header.Get("X-Request-Sha"))
		}
	}
}

// A streamed response reaches the client while the backend is still
// writing: the proxy flushes when the backend pauses.
func TestStreamingFlushes(t *testing.T) {
	release := make(chan struct{})
	b := startBackend(t, "sse", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: second\n\n")
	}))
	defer close(release)
	url, _ := proxyFor(t, "", []*backend{b})
	resp, err := http.Get(url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: %q, %v", line, err)
	}
}

func TestTrailersRelayed(t *testing.T) {
	b := startBackend(t, "t", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Write([]byte("body"))
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "abc")
	}))
	url, _ := proxyFor(t, "", []*backend{b})
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "body" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Fatalf("body %q trailer %v", body, resp.Trailer)
	}
}

// Connections to backends are kept and reused across requests.
func TestUpstreamConnectionsReused(t *testing.T) {
	var conns atomic.Int64
	b := startBackendWith(t, "a", nil, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
	})
	url, srv := proxyFor(t, "", []*backend{b})
	for i := 0; i < 50; i++ {
		get(t, http.DefaultClient, url+"/")
	}
	st := srv.Pool("p").Backends()[0].Conns.Stats()
	if conns.Load() != 1 || st.Created != 1 || st.Reused != 49 || st.Idle != 1 {
		t.Fatalf("backend saw %d connections; pool stats %+v", conns.Load(), st)
	}
}

// Idle upstream connections are closed once past the idle timeout, without
// waiting for a request to find them.
func TestIdleUpstreamConnectionsClosed(t *testing.T) {
	var closed atomic.Int64
	b := startBackendWith(t, "a", nil, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				closed.Add(1)
			}
		}
	})
	url, srv := startProxy(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    idle_conn_timeout: 100ms
    backends: [{address: %s}]
wasm: {cache_dir: %s}
`, b.addr, gowasm.CacheDir()))
	get(t, http.DefaultClient, url+"/")
	conns := srv.Pool("p").Backends()[0].Conns
	if st := conns.Stats(); st.Idle != 1 || st.Open != 1 {
		t.Fatalf("after one request: %+v", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for closed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := conns.Stats(); st.Idle != 0 || st.Open != 0 || closed.Load() != 1 {
		t.Fatalf("after the idle timeout: %+v, backend saw %d closed", st, closed.Load())
	}
}

// A backend that closes idle keep-alive connections early: the next GET on
// the stale connection is sent again on a new one.
func TestStaleConnectionRetried(t *testing.T) {
	b := startBackend(t, "a", nil)
	b.srv.SetKeepAlivesEnabled(true)
	url, _ := proxyFor(t, "", []*backend{b})
	get(t, http.DefaultClient, url+"/")
	// Close the backend's idle connections behind the proxy's back.
	b.srv.SetKeepAlivesEnabled(false) // closes idle connections now
	b.srv.SetKeepAlivesEnabled(true)
	time.Sleep(50 * time.Millisecond) // let the FIN arrive
	for i := 0; i < 3; i++ {
		resp, body := get(t, http.DefaultClient, url+"/")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d after the backend closed idle connections: %d %q", i, resp.StatusCode, body)
		}
	}
}

// An upgraded connection (101) is relayed both ways.
func TestUpgradeTunnel(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Header.Get("Upgrade") != "echo" {
					fmt.Fprint(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
					return
				}
				fmt.Fprint(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
				io.Copy(c, br) // echo
			}()
		}
	}()
	url, _ := proxyFor(t, "", []*backend{{addr: ln.Addr().String()}})
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" {
		t.Fatalf("%v %v", resp, err)
	}
	for _, msg := range []string{"hello\n", "again\n"} {
		fmt.Fprint(c, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("echo %q, %v", got, err)
		}
	}
}

// Shutdown lets a slow in-flight request finish, refuses new connections,
// and returns once it is done.
func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	b := startBackend(t, "slow", nil)
	url, srv := proxyFor(t, "", []*backend{b})
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(url + "/slow?ms=700")
		if err != nil {
			done <- result{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, string(body), err}
	}()
	// Wait until the request is in flight.
	for b.hits.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	time.Sleep(50 * time.Millisecond)
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), time.Second); err == nil {
		t.Error("a new connection was accepted during shutdown")
	}
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "slow served GET /slow?ms=700\n" {
		t.Fatalf("in-flight request: %d %q %v", r.status, r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestPolicyFromFile(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	dir := t.TempDir()
	wasm := gowasm.Build(t, "./examples/policies/go/first_healthy")
	if err := os.WriteFile(dir+"/first.wasm", wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	url, _ := startProxyIn(t, dir, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    policy: first.wasm
    backends: [{address: %s}, {address: %s}]
wasm: {cache_dir: %s}
`, a.addr, b.addr, gowasm.CacheDir()))
	for i := 0; i < 5; i++ {
		resp, _ := get(t, http.DefaultClient, url+"/")
		if resp.Header.Get("X-Demo-Backend") != "a" {
			t.Fatalf("request %d went to %q", i, resp.Header.Get("X-Demo-Backend"))
		}
	}
}

// The README's policy (examples/policies/go/sticky) keeps each user on one
// backend through the proxy.
func TestStickyExample(t *testing.T) {
	bs := []*backend{startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/sticky.wasm", gowasm.Build(t, "./examples/policies/go/sticky"), 0o644); err != nil {
		t.Fatal(err)
	}
	url, _ := startProxyIn(t, dir, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    policy: sticky.wasm
    hash_key: [header:X-User]
    backends: [{address: %s}, {address: %s}, {address: %s}]
wasm: {cache_dir: %s}
`, bs[0].addr, bs[1].addr, bs[2].addr, gowasm.CacheDir()))
	url += "/"
	servedBy := map[string]string{}
	used := map[string]bool{}
	for round := 0; round < 3; round++ {
		for u := 0; u < 30; u++ {
			user := fmt.Sprintf("user-%d", u)
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("X-User", user)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Get("X-Demo-Backend")
			if prev, ok := servedBy[user]; ok && prev != got {
				t.Fatalf("%s went to %s, then to %s", user, prev, got)
			}
			servedBy[user] = got
			used[got] = true
		}
	}
	if len(used) != 3 {
		t.Fatalf("30 users used only backends %v", used)
	}
}

func TestBuildErrorsAreLocated(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/nomarker.wasm", gowasm.Build(t, "./hostabi/lbhost/testdata/nomarker"), 0o644)
	os.WriteFile(dir+"/garbage.wasm", []byte("not wasm at all"), 0o644)
	os.WriteFile(dir+"/initfail.wasm", gowasm.Build(t, "./hostabi/lbhost/testdata/initfail"), 0o644)
	cfg, err := config.Parse([]byte(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: a}]}]
pools:
  a:
    policy: nomarker.wasm
    backends: [{address: "127.0.0.1:1"}]
  b:
    policy: garbage.wasm
    backends: [{address: "127.0.0.1:1"}]
  c:
    policy: initfail.wasm
    policy_config: {threshold: 7}
    backends: [{address: "127.0.0.1:1"}]
  d:
    policy: missing.wasm
    backends: [{address: "127.0.0.1:1"}]
  e:
    policy: round_robin
    policy_config: {speed: fast}
    backends: [{address: "127.0.0.1:1"}]
wasm: {cache_dir: `+gowasm.CacheDir()+`}
`), dir+"/c.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(context.Background(), cfg, quietLogger())
	if err == nil {
		t.Fatal("built")
	}
	for _, want := range []string{
		"c.yaml:5: pools.a.policy: module " + dir + "/nomarker.wasm: missing export wproxy_abi_lb_v1",
		"c.yaml:8: pools.b.policy: module " + dir + "/garbage.wasm: not a valid WebAssembly module",
		`c.yaml:12: pools.c.policy_config: module ` + dir + `/initfail.wasm: wproxy_lb_init: errno 1 (invalid): threshold must be between 0 and 1, got {"threshold":7}`,
		"c.yaml:15: pools.d.policy: module " + dir + "/missing.wasm: no such file or directory",
		`c.yaml:19: pools.e.policy_config: module round_robin: wproxy_lb_init: errno 1 (invalid): round_robin takes no policy_config, got {"speed":"fast"}`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors:\n%v\nwant a line containing\n%s", err, want)
		}
	}
}
