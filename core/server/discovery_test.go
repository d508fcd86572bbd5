package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A file source: its backends join the static one; an edit is applied
// within an interval under load with no failed request; a broken file is
// refused with its line, the last good set stays, and the status says so;
// fixing it applies it.
func TestFileDiscovery(t *testing.T) {
	a, b, c := startHealthBackend(t, "a"), startHealthBackend(t, "b"), startHealthBackend(t, "c")
	dir := t.TempDir()
	file := filepath.Join(dir, "backends.yaml")
	write := func(s string) {
		t.Helper()
		// Through a rename, as editors and config managers do.
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf("backends:\n  - {address: %s}\n", b.addr))
	url, srv := startProxyIn(t, dir, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    backends: [{address: %s}]
    discovery: [{file: backends.yaml, interval: 20ms}]
admin: {address: "127.0.0.1:0"}
`, a.addr))
	if got := sendN(t, url, 20); got["a"] != 10 || got["b"] != 10 {
		t.Fatalf("static a and b from the file: %v", got)
	}

	// Steady load while the file changes.
	var failed, sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				resp, err := http.Get(url + "/")
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	start := time.Now()
	write(fmt.Sprintf("backends:\n  - {address: %s, weight: 2}\n", c.addr))
	took := waitFor(t, "c to replace b", func() bool { return balanced(srv, c.addr) && !balanced(srv, b.addr) })
	t.Logf("file changed: applied after %s (interval 20ms)", took)
	write("backends:\n  - {address: 10.0.0.1}\n") // no port
	waitFor(t, "the broken file to be reported", func() bool {
		st := srv.Discovery()["p"]
		return len(st) == 1 && !st[0].OK && strings.Contains(st[0].LastError, "backends.yaml:2: backends[0].address: \"10.0.0.1\"")
	})
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed while the file changed", failed.Load(), sent.Load())
	}
	t.Logf("%d requests in %s while the file changed, none failed", sent.Load(), time.Since(start).Round(time.Millisecond))
	if got := sendN(t, url, 30); got["a"] != 10 || got["c"] != 20 {
		t.Fatalf("after a broken file, the last good set (a, c×2): %v", got)
	}
	fams := scrape(t, srv)
	if n, _ := metricValue(fams, "wproxy_discovery_errors_total", labels("pool", "p")); n < 1 {
		t.Fatalf("errors counted: %v", n)
	}
	if up, _ := metricValue(fams, "wproxy_discovery_up", labels("pool", "p")); up != 0 {
		t.Fatalf("wproxy_discovery_up %v while the file is broken", up)
	}
	write(fmt.Sprintf("backends:\n  - {address: %s}\n  - {address: %s}\n", b.addr, c.addr))
	waitFor(t, "the fixed file to apply", func() bool { return balanced(srv, b.addr) && balanced(srv, c.addr) })
	if got := sendN(t, url, 30); got["a"] != 10 || got["b"] != 10 || got["c"] != 10 {
		t.Fatalf("after the fix: %v", got)
	}
}
