package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wproxy/wproxy/internal/gowasm"
)

// loadBackend is a backend with a configurable delay that counts its
// requests, its load-endpoint hits, and answers /load with its own
// in-flight count as load (in flight / 10).
type loadBackend struct {
	*backend
	inflight atomic.Int64
	served   atomic.Int64
	loadHits atomic.Int64
}

func startLoadBackend(t *testing.T, name string, delay time.Duration, load http.HandlerFunc) *loadBackend {
	lbk := &loadBackend{}
	lbk.backend = startBackend(t, name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/load" {
			lbk.loadHits.Add(1)
			if load != nil {
				load(w, r)
				return
			}
			fmt.Fprintf(w, `{"load": %.3f}`, float64(lbk.inflight.Load())/10)
			return
		}
		lbk.inflight.Add(1)
		defer lbk.inflight.Add(-1)
		time.Sleep(delay)
		lbk.served.Add(1)
		w.Header().Set("X-Demo-Backend", name)
		io.WriteString(w, name)
	}))
	return lbk
}

func poolYAML(policy, config string, backends []*loadBackend) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "listeners: [{address: \"127.0.0.1:0\", routes: [{pool: p}]}]\npools:\n  p:\n    policy: %s\n", policy)
	if config != "" {
		fmt.Fprintf(&sb, "    policy_config: %s\n", config)
	}
	sb.WriteString("    backends:\n")
	for _, b := range backends {
		fmt.Fprintf(&sb, "      - address: %s\n", b.addr)
	}
	fmt.Fprintf(&sb, "wasm: {cache_dir: %s}\n", gowasm.CacheDir())
	return sb.String()
}

// drive sends requests from clients concurrent clients until total have
// been sent, and returns how many failed and the slowest.
func drive(t *testing.T, url string, clients, total int) (failed int64, slowest time.Duration) {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		bad  atomic.Int64
		mu   sync.Mutex
	)
	for range clients {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for next.Add(1) <= int64(total) {
				start := time.Now()
				resp, err := c.Get(url + "/work")
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					bad.Add(1)
				}
				d := time.Since(start)
				mu.Lock()
				slowest = max(slowest, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return bad.Load(), slowest
}

// least_request and load_aware send a backend 20 times slower than the
// others less than 1/N of the requests (round robin sends it exactly 1/N).
func TestSlowBackendGetsLessThanItsShare(t *testing.T) {
	for _, policy := range []string{"least_request", "load_aware"} {
		t.Run(policy, func(t *testing.T) {
			var bs []*loadBackend
			for i := range 5 {
				delay := 2 * time.Millisecond
				if i == 2 {
					delay = 40 * time.Millisecond
				}
				bs = append(bs, startLoadBackend(t, fmt.Sprintf("b%d", i), delay, nil))
			}
			url, _ := startProxy(t, poolYAML(policy, `{}`, bs))
			const total = 1500
			if failed, _ := drive(t, url, 20, total); failed != 0 {
				t.Fatalf("%d requests failed", failed)
			}
			slow := bs[2].served.Load()
			var counts []int64
			for _, b := range bs {
				counts = append(counts, b.served.Load())
			}
			t.Logf("%s: requests per backend %v (the slow one is b2)", policy, counts)
			if slow >= total/5 {
				t.Fatalf("the slow backend served %d of %d requests, not less than 1/5", slow, total)
			}
		})
	}
}

// load_aware samples each backend's load endpoint at most once per ttl,
// whatever the request rate, the cores or the module instances.
func TestLoadSamplingIsBoundedByTTL(t *testing.T) {
	var bs []*loadBackend
	for i := range 3 {
		bs = append(bs, startLoadBackend(t, fmt.Sprintf("b%d", i), 0, nil))
	}
	url, _ := startProxy(t, poolYAML("load_aware", `{ttl_ms: 1000}`, bs))
	const run = 10 * time.Second
	deadline := time.Now().Add(run)
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			c := &http.Client{}
			for time.Now().Before(deadline) {
				resp, err := c.Get(url + "/work")
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	for i, b := range bs {
		hits := b.loadHits.Load()
		t.Logf("backend %d: %d load samples in %s, %d requests through the proxy", i, hits, run, sent.Load())
		// One sample per ttl, plus the first one at the start.
		if hits > int64(run/time.Second)+1 {
			t.Errorf("backend %d was sampled %d times in %s with a 1 s ttl", i, hits, run)
		}
		if hits < 3 {
			t.Errorf("backend %d was sampled only %d times: sampling does not work", i, hits)
		}
	}
}

// A load endpoint that hangs, or answers garbage, neither slows nor fails
// picks: the policy balances on the proxy's own figures.
func TestBrokenLoadEndpointsDoNotHurt(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	hang := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(time.Minute):
		}
	}
	garbage := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>not a number</html>") }
	bs := []*loadBackend{
		startLoadBackend(t, "hangs", time.Millisecond, hang),
		startLoadBackend(t, "garbage", time.Millisecond, garbage),
		startLoadBackend(t, "fine", time.Millisecond, nil),
	}
	url, _ := startProxy(t, poolYAML("load_aware", `{ttl_ms: 100, timeout_ms: 200}`, bs))
	failed, slowest := drive(t, url, 8, 1200)
	if failed != 0 {
		t.Fatalf("%d requests failed", failed)
	}
	// No request waited on a sample: a hanging one would hold it for the
	// minute the load endpoint hangs.
	if slowest > 5*time.Second {
		t.Fatalf("the slowest request took %s", slowest)
	}
	for _, b := range bs {
		if b.served.Load() < 100 {
			t.Errorf("%s served only %d of 1200", b.name, b.served.Load())
		}
	}
	if bs[0].loadHits.Load() == 0 || bs[1].loadHits.Load() == 0 {
		t.Error("the broken load endpoints were not even tried")
	}
}
