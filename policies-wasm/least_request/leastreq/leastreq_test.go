package leastreq

import (
	"math/rand/v2"
	"testing"

	"github.com/wproxy/wproxy/policies-wasm/internal/fakehost"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

func eps(weights ...uint32) []lb.Endpoint {
	out := make([]lb.Endpoint, len(weights))
	for i, w := range weights {
		out[i] = lb.Endpoint{Address: "10.0.0." + string(rune('1'+i)) + ":80", Weight: w}
	}
	return out
}

func TestPicksTheLessLoaded(t *testing.T) {
	h := &fakehost.Host{InFlight: []int64{50, 0, 0, 0}}
	lb.SetNativeHost(h)
	defer lb.SetNativeHost(nil)
	p, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	p.SetEndpoints(1, eps(1, 1, 1, 1))
	rng := rand.New(rand.NewPCG(1, 1))
	busy := 0
	for range 4000 {
		if p.Pick(lb.Request{Random: rng.Uint64()}) == 0 {
			busy++
		}
	}
	// Endpoint 0 wins only when both candidates are endpoint 0: 1/16.
	if busy > 4000/16*3/2 {
		t.Fatalf("the loaded endpoint got %d of 4000 picks", busy)
	}
}

func TestWeightsCount(t *testing.T) {
	h := &fakehost.Host{InFlight: []int64{3, 3}}
	lb.SetNativeHost(h)
	defer lb.SetNativeHost(nil)
	p, _ := New([]byte(`{"choice_count": 2}`))
	p.SetEndpoints(1, eps(1, 4))
	rng := rand.New(rand.NewPCG(2, 2))
	counts := [2]int{}
	for range 10000 {
		counts[p.Pick(lb.Request{Random: rng.Uint64()})]++
	}
	if counts[1] < counts[0]*4 {
		t.Fatalf("equal load, weights 1:4: picks %v", counts)
	}
}

func TestConfig(t *testing.T) {
	for in, ok := range map[string]bool{``: true, `{}`: true, `{"choice_count": 3}`: true, `{"choice_count": 1}`: false, `{"choice_count": 2.5}`: false, `{"choices": 2}`: false, `[1]`: false} {
		_, err := New([]byte(in))
		if (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestEmptyAndSingle(t *testing.T) {
	p, _ := New(nil)
	p.SetEndpoints(1, nil)
	if p.Pick(lb.Request{}) != lb.NoEndpoint {
		t.Fatal("empty")
	}
	p.SetEndpoints(2, eps(3))
	if p.Pick(lb.Request{}) != 0 {
		t.Fatal("single")
	}
}

func TestLatencyAware(t *testing.T) {
	h := &fakehost.Host{InFlight: []int64{0, 3, 3, 3}, Latency: []int64{40e6, 2e6, 2e6, 2e6}}
	lb.SetNativeHost(h)
	defer lb.SetNativeHost(nil)
	plain, _ := New([]byte(`{}`))
	aware, err := New([]byte(`{"latency_aware": true}`))
	if err != nil {
		t.Fatal(err)
	}
	plain.SetEndpoints(1, eps(1, 1, 1, 1))
	aware.SetEndpoints(1, eps(1, 1, 1, 1))
	rng := rand.New(rand.NewPCG(9, 9))
	var slowPlain, slowAware int
	for range 4000 {
		r := lb.Request{Random: rng.Uint64()}
		if plain.Pick(r) == 0 {
			slowPlain++
		}
		if aware.Pick(r) == 0 {
			slowAware++
		}
	}
	// Idle but slow: in-flight alone prefers it whenever it is drawn;
	// its 40 ms against 4 × 2 ms makes the latency-aware cost higher.
	if slowPlain < 1500 || slowAware != 0 {
		t.Fatalf("slow endpoint picked %d times by in-flight, %d latency-aware, of 4000", slowPlain, slowAware)
	}
}
