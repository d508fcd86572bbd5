package main

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/wproxy/wproxy/core/demo"
	"github.com/wproxy/wproxy/internal/etcdtest"
)

// answer asks the proxy once and returns the backend that answered, or ""
// when the answer was not a 200.
func answer(addr string) string {
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		return ""
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return ""
	}
	return resp.Header.Get("X-Demo-Backend")
}

// Real processes throughout: an etcd server, the proxy with an etcd
// discovery source, and `wproxy register` agents beside in-process
// backends. A registration is routed within an interval; an agent killed
// with SIGKILL (no deregistration) leaves the pool within its TTL and an
// interval; while etcd is down the pool keeps its set and nothing fails; a
// registration made while etcd was away is applied when it returns.
func TestEtcdDiscoveryFaults(t *testing.T) {
	bin := buildBinary(t)
	etcd := etcdtest.Start(t, etcdtest.Options{})
	backends, err := demo.StartBackends(3)
	if err != nil {
		t.Fatal(err)
	}
	defer backends.Close()
	const prefix, ttl, interval = "/wproxy/services/web", 2 * time.Second, 200 * time.Millisecond
	path := writeConfig(t, t.TempDir(), fmt.Sprintf(`listeners:
  - address: 127.0.0.1:0
    routes: [{pool: web}]
pools:
  web:
    backends: []
    discovery:
      - etcd: {endpoints: [%s], prefix: %s}
        interval: %s
wasm: {cache_dir: CACHE}
`, etcd.URL, prefix, interval))
	_, addr, lines := startProcess(t, bin, path)
	go func() {
		for l := range lines {
			t.Log("wproxy:", l)
		}
	}()
	if got := answer(addr); got != "" {
		t.Fatalf("an empty pool answered from %q", got)
	}
	register := func(i int) *exec.Cmd {
		cmd := exec.Command(bin, "register", "-etcd", etcd.URL, "-prefix", prefix, "-addr", backends.Addrs[i], "-ttl", ttl.String())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	waitAnswer := func(what, want string, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < limit {
			if answer(addr) == want {
				return time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: no answer from %s within %s", what, want, limit)
		return 0
	}

	a := register(0)
	t.Logf("registration → first request routed: %s (interval %s)", waitAnswer("first registration", "backend-1", 10*time.Second), interval)
	register(1)
	waitAnswer("second registration", "backend-2", 10*time.Second)

	// SIGKILL the first agent: its lease expires after the TTL.
	killed := time.Now()
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	var last time.Time
	for quiet := 0; quiet < 40; {
		switch answer(addr) {
		case "backend-1":
			last, quiet = time.Now(), 0
		case "backend-2":
			quiet++
		default:
			t.Fatal("a request failed while a registration expired")
		}
		if time.Since(killed) > ttl+interval+10*time.Second {
			t.Fatal("backend-1 still routed long after its agent died")
		}
		time.Sleep(10 * time.Millisecond)
	}
	gone := last.Sub(killed)
	t.Logf("SIGKILL → last request routed: %s (TTL %s, interval %s)", gone.Round(time.Millisecond), ttl, interval)
	if gone > ttl+interval+time.Second {
		t.Errorf("backend-1 left the pool %s after its agent died, more than TTL + interval + 1s", gone)
	}

	// etcd stops: the pool keeps backend-2 and nothing fails.
	etcd.Stop()
	outage := time.Now()
	register(2) // retries until etcd is back
	for time.Since(outage) < 1500*time.Millisecond {
		if got := answer(addr); got != "backend-2" {
			t.Fatalf("during the outage: answered by %q, want backend-2", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	etcd.Restart()
	back := time.Now()
	waitAnswer("registration made during the outage", "backend-3", 40*time.Second)
	t.Logf("etcd back → the change made while it was away routed: %s (outage %s)", time.Since(back).Round(time.Millisecond), back.Sub(outage).Round(time.Millisecond))
	waitAnswer("backend-2 after the outage", "backend-2", 5*time.Second)
}
