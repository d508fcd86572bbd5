package policieswasm

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/lbhost"
	"github.com/wproxy/wproxy/hostabi/wasmhost"
	"github.com/wproxy/wproxy/hostabi/wire"
	"github.com/wproxy/wproxy/internal/gowasm"
	"github.com/wproxy/wproxy/policies-wasm/internal/fakehost"
	"github.com/wproxy/wproxy/policies-wasm/least_request/leastreq"
	"github.com/wproxy/wproxy/policies-wasm/load_aware/loadaware"
	"github.com/wproxy/wproxy/policies-wasm/maglev/maglevpolicy"
	"github.com/wproxy/wproxy/policies-wasm/round_robin/swrr"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

// benchEP is a set item with figures, for picks through the real host.
type benchEP struct {
	addr            string
	inflight        atomic.Int64
	load, at, claim atomic.Int64
}

func (e *benchEP) InFlight() int64    { return e.inflight.Load() }
func (e *benchEP) LatencyEWMA() int64 { return 2_000_000 }
func (e *benchEP) Addr() string       { return e.addr }
func (e *benchEP) Load() (int64, int64, bool) {
	at := e.at.Load()
	return e.load.Load(), at, at != 0
}
func (e *benchEP) SetLoad(l, now int64) { e.load.Store(l); e.at.Store(now) }
func (e *benchEP) ClaimLoadSample(now, ttl int64) bool {
	last := e.claim.Load()
	return (last == 0 || now-last >= ttl) && e.claim.CompareAndSwap(last, now)
}
func (e *benchEP) TryAcquire(limit int64) bool {
	if e.inflight.Load() >= limit {
		return false
	}
	e.inflight.Add(1)
	return true
}
func (e *benchEP) Release() { e.inflight.Add(-1) }
func (e *benchEP) Figures(now int64) (int64, int64, int64, int64) {
	load, age := int64(-1), int64(-1)
	if l, at, ok := e.Load(); ok {
		load, age = l, max(now-at, 0)
	}
	return e.InFlight(), e.LatencyEWMA(), load, age
}

type attrs struct{}

func (attrs) Attr(string) (string, bool) { return "", false }

// BenchmarkModulePick is the cost of one pick of each default module through
// Wasm (the embedded module, the real host) against the same policy called
// natively (host calls answered by a fake host). Load samples are fresh, so
// load_aware starts no fetch; maglev gets a hash.
func BenchmarkModulePick(b *testing.B) {
	ctx := context.Background()
	rt, err := wasmhost.New(ctx, wasmhost.Config{CacheDir: gowasm.CacheDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	modules := []struct {
		name, config string
		native       func([]byte) (lb.Policy, error)
		hash         bool
	}{
		{"round_robin", "{}", swrr.New, false},
		{"least_request", "{}", leastreq.New, false},
		{"least_request", `{"latency_aware":true}`, leastreq.New, false},
		{"load_aware", "{}", loadaware.New, false},
		{"maglev", "{}", maglevpolicy.New, true},
		{"maglev", `{"bounded_loads":true}`, maglevpolicy.New, true},
	}
	for _, n := range []int{8, 1000} {
		items := make([]*benchEP, n)
		eps := make([]wire.Endpoint, n)
		for i := range items {
			eps[i] = wire.Endpoint{Address: fmt.Sprintf("10.0.%d.%d:80", i/256, i%256), Weight: 1}
			items[i] = &benchEP{addr: eps[i].Address}
			items[i].SetLoad(100_000, 1<<62) // fresh for ever (later than any Clock reading)
		}
		set, err := lbhost.NewSet(1, items, eps)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range modules {
			label := m.name
			if m.config != "{}" {
				label += m.config
			}
			var flags uint32
			if m.hash {
				flags = hostabi.PickHashPresent
			}
			wasm, _ := Lookup(m.name)
			mod, err := lbhost.Load(ctx, rt, m.name, wasm)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("wasm/%s/endpoints=%d", label, n), func(b *testing.B) {
				bal, err := lbhost.New(mod, []byte(m.config), set, lbhost.Options{Logger: slog.New(slog.DiscardHandler), PoolInFlight: func() int64 { return 0 }})
				if err != nil {
					b.Fatal(err)
				}
				defer bal.Close()
				b.ReportAllocs()
				// The proxy reads the clock once per request for its own
				// needs and hands that reading to the pick.
				now := lbhost.Clock()
				var seq uint64
				for b.Loop() {
					it, counted, err := bal.Pick(seq*0x9e3779b97f4a7c15, seq, seq*0xbf58476d1ce4e5b9, flags, attrs{}, now)
					if err != nil {
						b.Fatal(err)
					}
					if counted {
						it.Release()
					}
					seq++
				}
			})
			b.Run(fmt.Sprintf("native/%s/endpoints=%d", label, n), func(b *testing.B) {
				h := &fakehost.Host{InFlight: make([]int64, n), Latency: make([]int64, n), Loads: map[int]fakehost.Sample{}, Now: 1}
				for i := range n {
					h.Latency[i] = 2_000_000
					h.Loads[i] = fakehost.Sample{Load: 100_000, At: 1}
				}
				lb.SetNativeHost(h)
				defer lb.SetNativeHost(nil)
				p, err := m.native([]byte(m.config))
				if err != nil {
					b.Fatal(err)
				}
				if err := p.SetEndpoints(1, eps); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				var seq uint64
				for b.Loop() {
					i := p.Pick(lb.Request{Hash: seq * 0x9e3779b97f4a7c15, HashPresent: m.hash, Seq: seq, Random: seq * 0xbf58476d1ce4e5b9})
					if i < 0 {
						b.Fatal("no endpoint")
					}
					if h.InFlight[i] > 0 {
						h.InFlight[i] = 0 // bounded loads acquired it
					}
					seq++
				}
			})
		}
	}
}

// BenchmarkMaglevBuild is the cost of a new endpoint set for maglev: building
// the 65537-entry table, in Wasm (through the host, set encoding included)
// and natively.
func BenchmarkMaglevBuild(b *testing.B) {
	ctx := context.Background()
	rt, err := wasmhost.New(ctx, wasmhost.Config{CacheDir: gowasm.CacheDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	wasm, _ := Lookup("maglev")
	mod, err := lbhost.Load(ctx, rt, "maglev", wasm)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10, 100, 1000} {
		sets := make([]*lbhost.Set[*benchEP], 2)
		var eps []lb.Endpoint
		for v := range sets {
			items := make([]*benchEP, n)
			weps := make([]wire.Endpoint, n)
			for i := range items {
				weps[i] = wire.Endpoint{Address: fmt.Sprintf("10.%d.%d.%d:80", v, i/256, i%256), Weight: 1}
				items[i] = &benchEP{addr: weps[i].Address}
			}
			eps = weps
			sets[v], _ = lbhost.NewSet(uint64(v+1), items, weps)
		}
		b.Run(fmt.Sprintf("wasm/N=%d", n), func(b *testing.B) {
			bal, err := lbhost.New(mod, nil, sets[0], lbhost.Options{Logger: slog.New(slog.DiscardHandler), MaxInstances: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer bal.Close()
			i := 0
			for b.Loop() {
				i++
				if err := bal.SetEndpoints(sets[i%2]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("native/N=%d", n), func(b *testing.B) {
			p, _ := maglevpolicy.New(nil)
			for b.Loop() {
				if err := p.SetEndpoints(1, eps); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
