// Command slowbackend compares balancing policies when one backend is slow:
// five backends, one 20 times slower than the others, behind wproxy with
// round_robin, least_request and load_aware, and behind HAProxy with
// leastconn, loaded in turn by the same closed-loop client. It prints the
// latency percentiles of each, the slow backend's share of the requests, and
// the ratios the targets are stated in.
//
//	go run ./bench/slowbackend [-duration 10s] [-clients 16] [-fast 2ms]
//
// Backends and proxies run in this process (HAProxy as a child process, when
// installed); each backend answers /load with the time its queued requests
// will take, in units of 100 ms (at most 1), the format load_aware reads.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/server"
)

type backend struct {
	addr     string
	delay    time.Duration
	inflight atomic.Int64
	served   atomic.Int64
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/load" {
		// The time the queued work takes, in units of 100 ms: what a
		// server that knows its own service time would report.
		fmt.Fprintf(w, `{"load": %.3f, "inflight": %d}`, min(float64(b.inflight.Load())*b.delay.Seconds()/0.1, 1), b.inflight.Load())
		return
	}
	b.inflight.Add(1)
	time.Sleep(b.delay)
	b.inflight.Add(-1)
	b.served.Add(1)
	io.WriteString(w, "ok\n")
}

func main() {
	duration := flag.Duration("duration", 10*time.Second, "load per target")
	clients := flag.Int("clients", 16, "concurrent keep-alive clients")
	fast := flag.Duration("fast", 2*time.Millisecond, "service time of the fast backends; the slow one takes 20 times as long")
	flag.Parse()
	if err := run(*duration, *clients, *fast); err != nil {
		fmt.Fprintln(os.Stderr, "slowbackend:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, clients int, fast time.Duration) error {
	var backends []*backend
	for i := range 5 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		b := &backend{addr: ln.Addr().String(), delay: fast}
		if i == 2 {
			b.delay = 20 * fast
		}
		backends = append(backends, b)
		go http.Serve(ln, b)
	}
	type target struct {
		name string
		url  string
	}
	var targets []target
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, policy := range []struct{ name, module, config string }{
		{"round_robin", "round_robin", "{}"},
		{"least_request", "least_request", "{}"},
		{"least_request+lat", "least_request", "{latency_aware: true}"},
		{"load_aware", "load_aware", "{}"},
	} {
		var sb strings.Builder
		fmt.Fprintf(&sb, "listeners: [{address: \"127.0.0.1:0\", routes: [{pool: p}]}]\npools:\n  p:\n    policy: %s\n    policy_config: %s\n    backends:\n", policy.module, policy.config)
		for _, b := range backends {
			fmt.Fprintf(&sb, "      - address: %s\n", b.addr)
		}
		cfg, err := config.Parse([]byte(sb.String()), policy.name+".yaml", ".")
		if err != nil {
			return err
		}
		srv, err := server.Build(context.Background(), cfg, logger)
		if err != nil {
			return err
		}
		if err := srv.Start(); err != nil {
			return err
		}
		defer srv.Shutdown(context.Background())
		targets = append(targets, target{"wproxy " + policy.name, "http://" + srv.Addrs()[0]})
	}
	if url, stop, err := startHAProxy(backends); err != nil {
		fmt.Fprintln(os.Stderr, "slowbackend: HAProxy leastconn skipped:", err)
	} else {
		defer stop()
		targets = append(targets, target{"haproxy leastconn", url})
	}

	fmt.Printf("5 backends (4 × %s, 1 × %s), %d clients, %s per target, %d cores\n\n", fast, 20*fast, clients, duration, runtimeCPUs())
	fmt.Printf("%-24s %8s %8s %8s %9s %9s %11s\n", "target", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "slow share")
	p99 := map[string]float64{}
	for _, t := range targets {
		before := make([]int64, len(backends))
		for i, b := range backends {
			before[i] = b.served.Load()
		}
		lat, n := load(t.url, clients, duration)
		var total, slow int64
		for i, b := range backends {
			d := b.served.Load() - before[i]
			total += d
			if i == 2 {
				slow = d
			}
		}
		slices.Sort(lat)
		q := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)]) / 1e6 }
		p99[t.name] = q(0.99)
		fmt.Printf("%-24s %8.0f %8.2f %8.2f %9.2f %9.2f %10.2f%%\n", t.name, float64(n)/duration.Seconds(), q(0.5), q(0.99), q(0.999), q(1), 100*float64(slow)/float64(max(total, 1)))
	}
	fmt.Println()
	rr := p99["wproxy round_robin"]
	ha, haOK := p99["haproxy leastconn"]
	for _, name := range []string{"wproxy least_request", "wproxy least_request+lat", "wproxy load_aware"} {
		fmt.Printf("%-26s p99 / round_robin p99 = %.2f (target ≤ 0.30)", name, p99[name]/rr)
		if haOK {
			fmt.Printf("   p99 / HAProxy leastconn p99 = %.2f (target ≤ 1.00)", p99[name]/ha)
		}
		fmt.Println()
	}
	return nil
}

// load runs clients closed-loop keep-alive clients against url for d and
// returns every request's latency in ns.
func load(url string, clients int, d time.Duration) ([]int64, int) {
	var (
		mu  sync.Mutex
		all []int64
		wg  sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	for range clients {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			var mine []int64
			for time.Now().Before(deadline) {
				start := time.Now()
				resp, err := c.Get(url + "/")
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mine = append(mine, int64(time.Since(start)))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return all, len(all)
}

func startHAProxy(backends []*backend) (string, func(), error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/haproxy"); err2 != nil {
			return "", nil, err
		}
		bin = "/usr/sbin/haproxy"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	dir, err := os.MkdirTemp("", "slowbackend")
	if err != nil {
		return "", nil, err
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "global\n  nbthread 1\n  maxconn 4000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  option http-keep-alive\nfrontend fe\n  bind %s\n  default_backend be\nbackend be\n  balance leastconn\n  http-reuse always\n", addr)
	for i, b := range backends {
		fmt.Fprintf(&sb, "  server b%d %s\n", i, b.addr)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(sb.String()), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-f", cfg, "-db")
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait(); os.RemoveAll(dir) }
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr, stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("HAProxy did not start on %s", addr)
}
