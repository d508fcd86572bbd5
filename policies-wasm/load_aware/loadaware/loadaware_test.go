package loadaware

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/wproxy/wproxy/policies-wasm/internal/fakehost"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

func eps(n int) []lb.Endpoint {
	out := make([]lb.Endpoint, n)
	for i := range out {
		out[i] = lb.Endpoint{Address: "10.0.0." + string(rune('1'+i)) + ":80", Weight: 1}
	}
	return out
}

func TestParseLoad(t *testing.T) {
	for in, want := range map[string]float64{
		"0.42": 0.42, " 1\n": 1, `{"load":0.3}`: 0.3, `{"cpu":0.5,"mem":0.7,"inflight":3}`: 0.7, `{"cpu":0.9}`: 0.9, "2.5": 2.5,
	} {
		if got, ok := ParseLoad([]byte(in)); !ok || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "busy", "-1", "NaN", "1e9", `{"load":"high"}`, `{"inflight":3}`, `{"load":0.5`, "<html>"} {
		if got, ok := ParseLoad([]byte(bad)); ok {
			t.Errorf("%q accepted as %v", bad, got)
		}
	}
}

func FuzzParseLoad(f *testing.F) {
	for _, s := range []string{"0.5", `{"load":0.2}`, `{"cpu":0.1,"mem":0.2}`, "garbage"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, ok := ParseLoad(b); ok && !(v >= 0 && v <= 100) {
			t.Fatalf("%q gave %v", b, v)
		}
	})
}

// A loaded backend (by its own report) gets fewer requests; samples are
// taken once per ttl per backend, and only of candidates.
func TestSamplesAndAvoidsLoaded(t *testing.T) {
	h := &fakehost.Host{InFlight: make([]int64, 4), Now: 1e12}
	h.Fetcher = func(req *lb.FetchRequest) (*lb.FetchResult, bool) {
		if strings.HasPrefix(req.URL, "http://10.0.0.1:80/") {
			return &lb.FetchResult{Status: 200, Body: []byte(`{"load":0.95}`)}, true
		}
		return &lb.FetchResult{Status: 200, Body: []byte("0.05")}, true
	}
	lb.SetNativeHost(h)
	defer lb.SetNativeHost(nil)
	p, err := New([]byte(`{"ttl_ms": 1000}`))
	if err != nil {
		t.Fatal(err)
	}
	p.SetEndpoints(1, eps(4))
	rng := rand.New(rand.NewPCG(3, 3))
	counts := make([]int, 4)
	for range 8000 {
		counts[p.Pick(lb.Request{Random: rng.Uint64()})]++
	}
	if len(h.Fetches) != 4 {
		t.Fatalf("%d fetches within one ttl, want one per backend (4)", len(h.Fetches))
	}
	if h.Fetches[0].URL != "http://10.0.0.1:80/load" && h.Fetches[1].URL != "http://10.0.0.1:80/load" && h.Fetches[2].URL != "http://10.0.0.1:80/load" && h.Fetches[3].URL != "http://10.0.0.1:80/load" {
		t.Fatalf("no fetch of the first backend's /load: %+v", h.Fetches)
	}
	if counts[0] > 8000/4/2 {
		t.Fatalf("the loaded backend got %d of 8000 picks: %v", counts[0], counts)
	}
	// After the ttl, one more sample each.
	h.Now += 1_000_000_000
	for range 1000 {
		p.Pick(lb.Request{Random: rng.Uint64()})
	}
	if len(h.Fetches) != 8 {
		t.Fatalf("%d fetches after two ttls, want 8", len(h.Fetches))
	}
}

// Without samples (a load endpoint that never answers) the policy balances
// on requests in flight alone, and every pick succeeds.
func TestNoSamplesFallsBackToInFlight(t *testing.T) {
	h := &fakehost.Host{InFlight: []int64{40, 0, 0}, Now: 1e12}
	lb.SetNativeHost(h)
	defer lb.SetNativeHost(nil)
	p, _ := New(nil)
	p.SetEndpoints(1, eps(3))
	rng := rand.New(rand.NewPCG(4, 4))
	counts := make([]int, 3)
	for range 3000 {
		i := p.Pick(lb.Request{Random: rng.Uint64()})
		if i < 0 {
			t.Fatal("pick failed")
		}
		counts[i]++
	}
	if counts[0] > 3000/9*3/2 {
		t.Fatalf("the busy backend got %d: %v", counts[0], counts)
	}
}

func TestOldSamplesFade(t *testing.T) {
	h := &fakehost.Host{InFlight: make([]int64, 2), Now: 1e12, Loads: map[int]fakehost.Sample{0: {Load: lb.LoadScale, At: 1e12 - 20e9}}}
	lb.SetNativeHost(h)
	defer lb.SetNativeHost(nil)
	p, _ := New(nil) // max_age 10 s: a 20 s old sample counts for nothing
	p.SetEndpoints(1, eps(2))
	st, _ := h.Stats(0)
	if l := p.(*Policy).effectiveLoad(0, st); l != 0 {
		t.Fatalf("a sample past max_age still counts %v", l)
	}
	h.Loads[0] = fakehost.Sample{Load: lb.LoadScale, At: 1e12 - 5e9}
	st, _ = h.Stats(0)
	if l := p.(*Policy).effectiveLoad(0, st); l < 0.45 || l > 0.55 {
		t.Fatalf("a sample at half max_age counts %v, want 0.5", l)
	}
}

func TestConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{"path":"/stats/load","ttl_ms":500,"load_weight":2}`))
	if err != nil || c.Path != "/stats/load" || c.TTLMS != 500 || c.MaxAgeMS != 5000 || c.LoadWeight != 2 || c.TimeoutMS != 250 {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{`{"path":"load"}`, `{"ttl_ms":1}`, `{"max_age_ms":10,"ttl_ms":1000}`, `{"bogus":1}`, `{"load_weight":-1}`} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
