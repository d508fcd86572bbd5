package server

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wproxy/wproxy/internal/gowasm"
)

func maglevYAML(config, hashKey string, addrs []string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "listeners: [{address: \"127.0.0.1:0\", routes: [{pool: p}]}]\npools:\n  p:\n    policy: maglev\n    hash_key: [%s]\n", hashKey)
	if config != "" {
		fmt.Fprintf(&sb, "    policy_config: %s\n", config)
	}
	sb.WriteString("    backends:\n")
	for _, a := range addrs {
		fmt.Fprintf(&sb, "      - address: %s\n", a)
	}
	fmt.Fprintf(&sb, "wasm: {cache_dir: %s}\n", gowasm.CacheDir())
	return sb.String()
}

// keyRoutes sends one request per key and returns the backend of each.
func keyRoutes(t *testing.T, url string, keys int) []string {
	t.Helper()
	out := make([]string, keys)
	c := &http.Client{}
	for k := range keys {
		req, _ := http.NewRequest("GET", url+"/", nil)
		req.Header.Set("X-User", fmt.Sprintf("user-%d", k))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out[k] = resp.Header.Get("X-Demo-Backend")
	}
	return out
}

// Removing one backend of N moves the keys of that backend, and of the
// others only the few that Maglev's table reshuffles (at most half as many
// again, at this size).
func TestMaglevRemovalMovesOnlyThatBackendsKeys(t *testing.T) {
	const n, keys = 8, 2000
	var addrs []string
	names := map[string]string{}
	for i := range n {
		b := startBackend(t, fmt.Sprintf("b%d", i), nil)
		addrs = append(addrs, b.addr)
		names[b.addr] = b.name
	}
	url, _ := startProxy(t, maglevYAML("", "header:X-User", addrs))
	before := keyRoutes(t, url, keys)
	removed := "b3"
	url2, _ := startProxy(t, maglevYAML("", "header:X-User", append(append([]string{}, addrs[:3]...), addrs[4:]...)))
	after := keyRoutes(t, url2, keys)
	var onRemoved, movedOthers int
	perBackend := map[string]int{}
	for k := range keys {
		perBackend[before[k]]++
		if before[k] == removed {
			onRemoved++
			if after[k] == removed {
				t.Fatalf("key %d still on the removed backend", k)
			}
			continue
		}
		if after[k] != before[k] {
			movedOthers++
		}
	}
	t.Logf("%d keys over %d backends %v; %d were on %s and moved; %d of the others moved", keys, n, perBackend, onRemoved, removed, movedOthers)
	if len(perBackend) != n {
		t.Fatalf("keys reached %d backends of %d", len(perBackend), n)
	}
	// Keys moved in all, as a multiple of 1/N, at most 1.5.
	if ratio := float64(onRemoved+movedOthers) / keys * n; ratio > 1.5 {
		t.Fatalf("keys moved = %.2f × 1/N", ratio)
	}
}

// Bounded loads: with one hot key and concurrent requests, no backend holds
// more than ⌈1.25 · mean⌉ of the requests in flight; without the bound the
// hot key's backend takes them all.
func TestMaglevBoundedLoadsUnderSkew(t *testing.T) {
	const n, clients, total = 4, 20, 800
	run := func(config string) (maxSeen []int64, served []int64) {
		var addrs []string
		cur := make([]atomic.Int64, n)
		peak := make([]atomic.Int64, n)
		cnt := make([]atomic.Int64, n)
		for i := range n {
			b := startBackend(t, fmt.Sprintf("b%d", i), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				now := cur[i].Add(1)
				for {
					p := peak[i].Load()
					if now <= p || peak[i].CompareAndSwap(p, now) {
						break
					}
				}
				time.Sleep(5 * time.Millisecond)
				cur[i].Add(-1)
				cnt[i].Add(1)
			}))
			addrs = append(addrs, b.addr)
		}
		url, _ := startProxy(t, maglevYAML(config, "header:X-User", addrs))
		var wg sync.WaitGroup
		var next atomic.Int64
		for c := range clients {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(c), 7))
				hc := &http.Client{}
				for next.Add(1) <= total {
					req, _ := http.NewRequest("GET", url+"/", nil)
					// Skewed: 80% of requests carry the same key.
					key := "hot"
					if rng.IntN(5) == 0 {
						key = fmt.Sprintf("cold-%d", rng.IntN(1000))
					}
					req.Header.Set("X-User", key)
					resp, err := hc.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		for i := range n {
			maxSeen = append(maxSeen, peak[i].Load())
			served = append(served, cnt[i].Load())
		}
		return maxSeen, served
	}
	bound := int64(math.Ceil(1.25 * clients / n))
	peaks, served := run(`{bounded_loads: true, balance_factor: 1.25}`)
	t.Logf("bounded: peak in flight per backend %v (bound %d), served %v", peaks, bound, served)
	for i, p := range peaks {
		if p > bound {
			t.Fatalf("backend %d held %d requests at once, more than ⌈1.25·%d/%d⌉ = %d", i, p, clients, n, bound)
		}
	}
	peaks, served = run(``)
	t.Logf("unbounded: peak in flight per backend %v, served %v", peaks, served)
	hottest := int64(0)
	for _, p := range peaks {
		hottest = max(hottest, p)
	}
	if hottest <= bound {
		t.Fatalf("without bounded loads the hot key's backend peaked at %d: the test does not load it", hottest)
	}
}
