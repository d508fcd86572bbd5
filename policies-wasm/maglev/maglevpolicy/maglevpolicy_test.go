package maglevpolicy

import (
	"fmt"
	"math"
	"testing"

	"github.com/wproxy/wproxy/policies-wasm/internal/fakehost"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

func endpoints(n int) []lb.Endpoint {
	eps := make([]lb.Endpoint, n)
	for i := range eps {
		eps[i] = lb.Endpoint{Address: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: 1}
	}
	return eps
}

func TestSameKeySameBackend(t *testing.T) {
	p, err := New([]byte(`{"table_size": 65537}`))
	if err != nil {
		t.Fatal(err)
	}
	eps := endpoints(7)
	p.SetEndpoints(1, eps)
	q, _ := New(nil)
	// Another instance, given the endpoints in another order.
	rev := append([]lb.Endpoint(nil), eps...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	q.SetEndpoints(1, rev)
	for k := uint64(0); k < 2000; k++ {
		h := k * 0x9e3779b97f4a7c15
		a := p.Pick(lb.Request{Hash: h, HashPresent: true, Random: k})
		b := q.Pick(lb.Request{Hash: h, HashPresent: true, Random: k + 1})
		if eps[a].Address != rev[b].Address {
			t.Fatalf("key %d: %s vs %s", k, eps[a].Address, rev[b].Address)
		}
		if again := p.Pick(lb.Request{Hash: h, HashPresent: true, Random: 99}); again != a {
			t.Fatalf("key %d moved between picks", k)
		}
	}
}

func TestFallbacks(t *testing.T) {
	for _, fb := range []string{"random", "round_robin"} {
		p, err := New([]byte(`{"fallback": "` + fb + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		p.SetEndpoints(1, endpoints(4))
		seen := map[int]int{}
		for i := uint64(0); i < 4000; i++ {
			seen[p.Pick(lb.Request{Seq: i, Random: i * 0x9e3779b97f4a7c15})]++
		}
		if len(seen) != 4 {
			t.Fatalf("%s: keyless requests went to %v", fb, seen)
		}
		for i, c := range seen {
			if c < 800 || c > 1200 {
				t.Fatalf("%s: endpoint %d got %d of 4000", fb, i, c)
			}
		}
	}
}

// With bounded loads a hot key spills over to the next backends in table
// order once its own is at ⌈c·(in flight+1)/N⌉.
func TestBoundedLoads(t *testing.T) {
	h := &fakehost.Host{InFlight: make([]int64, 4)}
	lb.SetNativeHost(h)
	defer lb.SetNativeHost(nil)
	p, err := New([]byte(`{"bounded_loads": true, "balance_factor": 1.25}`))
	if err != nil {
		t.Fatal(err)
	}
	p.SetEndpoints(1, endpoints(4))
	const hot = 12345
	first := p.Pick(lb.Request{Hash: hot, HashPresent: true})
	// 40 requests of one key, none finishing: each pick acquired its
	// backend in the fake host.
	for range 39 {
		p.Pick(lb.Request{Hash: hot, HashPresent: true})
	}
	total := h.PoolInFlight()
	if total != 40 {
		t.Fatalf("%d requests counted, want 40", total)
	}
	limit := int64(math.Ceil(1.25 * 40 / 4))
	for i, n := range h.InFlight {
		if n > limit {
			t.Fatalf("endpoint %d holds %d requests, more than ⌈1.25·40/4⌉ = %d: %v", i, n, limit, h.InFlight)
		}
	}
	if h.InFlight[first] < limit-1 {
		t.Fatalf("the key's own backend %d holds only %d: %v", first, h.InFlight[first], h.InFlight)
	}
}

func TestConfig(t *testing.T) {
	for in, ok := range map[string]bool{
		``: true, `{"table_size": 131071}`: true, `{"table_size": 65536}`: false, `{"fallback": "first"}`: false,
		`{"bounded_loads": "yes"}`: false, `{"balance_factor": 0.5}`: false, `{"tablesize": 7}`: false,
	} {
		if _, err := New([]byte(in)); (err == nil) != ok {
			t.Errorf("%s: %v", in, err)
		}
	}
	p, _ := New([]byte(`{"table_size": 7}`))
	if err := p.SetEndpoints(1, endpoints(7)); err == nil {
		t.Error("7 endpoints in a table of 7 accepted")
	}
}
