package lbhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wproxy/wproxy/hostabi/wasmhost"
	"github.com/wproxy/wproxy/hostabi/wire"
	"github.com/wproxy/wproxy/internal/gowasm"
	policieswasm "github.com/wproxy/wproxy/policies-wasm"
	"github.com/wproxy/wproxy/policies-wasm/round_robin/swrr"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

func newRuntime(tb testing.TB) *wasmhost.Runtime {
	tb.Helper()
	rt, err := wasmhost.New(context.Background(), wasmhost.Config{CacheDir: gowasm.CacheDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func roundRobin(tb testing.TB, rt *wasmhost.Runtime) *wasmhost.Module {
	tb.Helper()
	wasm, ok := policieswasm.Lookup("round_robin")
	if !ok {
		tb.Fatal("round_robin is not embedded")
	}
	m, err := Load(context.Background(), rt, "round_robin", wasm)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// testEP is a set item with the live figures host functions read.
type testEP struct {
	name, addr string
	inflight   atomic.Int64
	latency    atomic.Int64
	load, at   atomic.Int64
	claimAt    atomic.Int64
}

func (e *testEP) InFlight() int64    { return e.inflight.Load() }
func (e *testEP) LatencyEWMA() int64 { return e.latency.Load() }
func (e *testEP) Addr() string       { return e.addr }
func (e *testEP) Load() (int64, int64, bool) {
	at := e.at.Load()
	return e.load.Load(), at, at != 0
}
func (e *testEP) SetLoad(load, now int64) { e.load.Store(load); e.at.Store(now) }
func (e *testEP) ClaimLoadSample(now, ttl int64) bool {
	last := e.claimAt.Load()
	return (last == 0 || now-last >= ttl) && e.claimAt.CompareAndSwap(last, now)
}
func (e *testEP) String() string { return e.name }
func (e *testEP) TryAcquire(limit int64) bool {
	for {
		cur := e.inflight.Load()
		if cur >= limit {
			return false
		}
		if e.inflight.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}
func (e *testEP) Release() { e.inflight.Add(-1) }
func (e *testEP) Figures(now int64) (int64, int64, int64, int64) {
	load, age := int64(-1), int64(-1)
	if l, at, ok := e.Load(); ok {
		load, age = l, now-at
	}
	return e.InFlight(), e.LatencyEWMA(), load, age
}

func testSet(tb testing.TB, version uint64, weights ...uint32) *Set[*testEP] {
	tb.Helper()
	items := make([]*testEP, len(weights))
	eps := make([]wire.Endpoint, len(weights))
	for i, w := range weights {
		eps[i] = wire.Endpoint{Address: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w}
		items[i] = &testEP{name: string(rune('a' + i)), addr: eps[i].Address}
	}
	s, err := NewSet(version, items, eps)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestRoundRobinSequence(t *testing.T) {
	rt := newRuntime(t)
	b, err := New(roundRobin(t, rt), []byte("{}"), testSet(t, 1, 5, 1, 1), Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var got strings.Builder
	for seq := range uint64(14) {
		it, _, err := b.Pick(0, seq, 0, 0, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(it.name)
	}
	if got.String() != "aabacaaaabacaa" {
		t.Fatalf("sequence %q, want aabacaa twice", got.String())
	}
}

// Concurrent picks over several instances stay exact because the rotation
// follows the sequence number.
func TestRoundRobinExactUnderConcurrency(t *testing.T) {
	rt := newRuntime(t)
	b, err := New(roundRobin(t, rt), nil, testSet(t, 1, 5, 1, 1), Options{Name: "test", MaxInstances: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
		next   = make(chan uint64)
	)
	for range 50 {
		wg.Go(func() {
			for seq := range next {
				it, _, err := b.Pick(0, seq, 0, 0, nil, 0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				counts[it.name]++
				mu.Unlock()
			}
		})
	}
	for seq := range uint64(7000) {
		next <- seq
	}
	close(next)
	wg.Wait()
	if counts["a"] != 5000 || counts["b"] != 1000 || counts["c"] != 1000 {
		t.Fatalf("counts %v, want a:5000 b:1000 c:1000", counts)
	}
	if s := b.Stats(); s.Instances < 2 {
		t.Logf("only %d instance(s) ran; concurrency was low", s.Instances)
	}
}

func TestSetEndpointsReachesEveryInstance(t *testing.T) {
	rt := newRuntime(t)
	b, err := New(roundRobin(t, rt), nil, testSet(t, 1, 1, 1), Options{Name: "test", MaxInstances: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Make three instances exist.
	var (
		slots []*slot[*testEP]
		words []uint64
	)
	for range 3 {
		s, w, err := b.acquire(slotBusy)
		if err != nil {
			t.Fatal(err)
		}
		slots, words = append(slots, s), append(words, w)
	}
	for i, s := range slots {
		b.release(s, words[i])
	}
	if n := b.Stats().Instances; n != 3 {
		t.Fatalf("%d instances, want 3", n)
	}
	if err := b.SetEndpoints(testSet(t, 2, 1, 1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for seq := range uint64(40) {
		it, _, err := b.Pick(0, seq, 0, 0, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		seen[it.name] = true
	}
	if len(seen) != 4 {
		t.Fatalf("picked %v after growing the set to 4", seen)
	}
}

func TestEmptySetGivesNoEndpoint(t *testing.T) {
	rt := newRuntime(t)
	b, err := New(roundRobin(t, rt), nil, testSet(t, 1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, _, err := b.Pick(0, 0, 0, 0, nil, 0); !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("err = %v, want ErrNoEndpoint", err)
	}
}

func TestLoadRefusesBadModules(t *testing.T) {
	rt := newRuntime(t)
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"not wasm", []byte("hello"), "not a valid WebAssembly module"},
		{"empty module", []byte("\x00asm\x01\x00\x00\x00"), "missing export wproxy_abi_lb_v1"},
		{"no marker", gowasm.Build(t, "./hostabi/lbhost/testdata/nomarker"), "missing export wproxy_abi_lb_v1"},
		{"unknown import", gowasm.Build(t, "./hostabi/lbhost/testdata/badimport"), "imports wproxy_lb_v1.teleport, which this host does not provide"},
		{"command", gowasm.BuildWith(t, "./hostabi/lbhost/testdata/command", []string{"-trimpath"}), "built as a command (exports _start, not _initialize)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(context.Background(), rt, tt.name+".wasm", tt.wasm)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.name+".wasm") {
				t.Fatalf("err = %v, want it to name the module and contain %q", err, tt.want)
			}
		})
	}
}

func TestModuleWithoutMemoryIsRefused(t *testing.T) {
	rt := newRuntime(t)
	wasm, err := os.ReadFile("testdata/nomemory.wasm")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(context.Background(), rt, "nomemory.wasm", wasm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(m, nil, testSet(t, 1, 1), Options{}); err == nil || !strings.Contains(err.Error(), "module nomemory.wasm defines no memory") {
		t.Fatalf("err = %v", err)
	}
}

// The WebAssembly text example of ABI.md works as the document says.
func TestABIExampleModule(t *testing.T) {
	rt := newRuntime(t)
	wasm, err := os.ReadFile("testdata/rr.wasm")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(context.Background(), rt, "rr.wasm", wasm)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(m, []byte("{}"), testSet(t, 1, 5, 1, 1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var got strings.Builder
	for seq := range uint64(6) {
		it, _, err := b.Pick(0, seq, 0, 0, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(it.name)
	}
	if got.String() != "abcabc" {
		t.Fatalf("picks %q", got.String())
	}
	if err := b.SetEndpoints(testSet(t, 2)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Pick(0, 7, 0, 0, nil, 0); !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("empty set: %v", err)
	}
}

func TestInitErrorQuotesModule(t *testing.T) {
	rt := newRuntime(t)
	m, err := Load(context.Background(), rt, "initfail.wasm", gowasm.Build(t, "./hostabi/lbhost/testdata/initfail"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(m, []byte(`{"threshold":7}`), testSet(t, 1, 1), Options{})
	if err == nil || !strings.Contains(err.Error(), `threshold must be between 0 and 1, got {"threshold":7}`) || !strings.Contains(err.Error(), "wproxy_lb_init") {
		t.Fatalf("err = %v", err)
	}
}

func TestBadIndexIsAnError(t *testing.T) {
	rt := newRuntime(t)
	m, err := Load(context.Background(), rt, "badindex.wasm", gowasm.Build(t, "./hostabi/lbhost/testdata/badindex"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(m, nil, testSet(t, 1, 1, 1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, _, err := b.Pick(0, 1, 0, 0, nil, 0); err == nil || !strings.Contains(err.Error(), "returned index 12, but the set has 2 endpoints") {
		t.Fatalf("err = %v", err)
	}
	if it, _, err := b.Pick(0, 2, 0, 0, nil, 0); err != nil || it.name != "a" {
		t.Fatalf("after a bad index: %q, %v", it, err)
	}
	if b.Stats().Failures != 1 {
		t.Fatalf("failures = %d", b.Stats().Failures)
	}
}

// An instance that exits is discarded and replaced; the balancer goes on.
func TestExitedInstanceIsReplaced(t *testing.T) {
	rt := newRuntime(t)
	m, err := Load(context.Background(), rt, "exit.wasm", gowasm.Build(t, "./hostabi/lbhost/testdata/exit"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(m, nil, testSet(t, 1, 1), Options{MaxInstances: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, _, err := b.Pick(0, 1, 0, 0, nil, 0); err == nil {
		t.Fatal("pick in an exiting module succeeded")
	}
	for seq := uint64(2); seq < 5; seq++ {
		if it, _, err := b.Pick(0, seq, 0, 0, nil, 0); err != nil || it.name != "a" {
			t.Fatalf("pick %d after exit: %q, %v", seq, it, err)
		}
	}
	if s := b.Stats(); s.InstancesCreated != 2 || s.Instances != 1 {
		t.Fatalf("stats %+v, want 2 created, 1 alive", s)
	}
}

func BenchmarkPick(b *testing.B) {
	rt := newRuntime(b)
	mod := roundRobin(b, rt)
	wat, err := os.ReadFile("testdata/rr.wasm")
	if err != nil {
		b.Fatal(err)
	}
	// ABI.md's round robin in WebAssembly text: the cost of the host side
	// and the call, without a Go guest's runtime.
	watMod, err := Load(context.Background(), rt, "rr.wasm", wat)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{8, 1000} {
		weights := make([]uint32, n)
		eps := make([]lb.Endpoint, n)
		for i := range weights {
			weights[i] = uint32(1 + i%3)
			eps[i] = lb.Endpoint{Address: fmt.Sprintf("10.0.%d.%d:80", i/256, i%256), Weight: weights[i]}
		}
		set := testSet(b, 1, weights...)
		for _, v := range []struct {
			name     string
			mod      *wasmhost.Module
			max      int
			parallel bool
		}{
			{"wasm", mod, 0, false},
			{"wasm-parallel", mod, 0, true},
			{"wasm-serialized-parallel", mod, 1, true},
			{"wat", watMod, 0, false},
		} {
			b.Run(fmt.Sprintf("%s/endpoints=%d", v.name, n), func(b *testing.B) {
				bal, err := New(v.mod, nil, set, Options{MaxInstances: v.max, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				defer bal.Close()
				b.ReportAllocs()
				loop := func(next func() bool) {
					var seq uint64
					for next() {
						if _, _, err := bal.Pick(0, seq, 0, 0, nil, 0); err != nil {
							b.Error(err)
							return
						}
						seq++
					}
				}
				if v.parallel {
					b.RunParallel(func(pb *testing.PB) { loop(pb.Next) })
				} else {
					loop(b.Loop)
				}
			})
		}
		b.Run(fmt.Sprintf("native/endpoints=%d", n), func(b *testing.B) {
			p, _ := swrr.New(nil)
			if err := p.SetEndpoints(1, eps); err != nil {
				b.Fatal(err)
			}
			items := set.Items
			b.ReportAllocs()
			var seq uint64
			for b.Loop() {
				i := p.Pick(lb.Request{Seq: seq})
				_ = items[i]
				seq++
			}
		})
	}
}

// BenchmarkLoad is the start-up cost of a module: compiling the default
// round_robin module with no cache, with a warm disk cache, and creating one
// initialised instance.
func BenchmarkLoad(b *testing.B) {
	wasm, _ := policieswasm.Lookup("round_robin")
	ctx := context.Background()
	b.Run("compile-cold", func(b *testing.B) {
		for b.Loop() {
			rt, err := wasmhost.New(ctx, wasmhost.Config{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Load(ctx, rt, "round_robin", wasm); err != nil {
				b.Fatal(err)
			}
			rt.Close(ctx)
		}
	})
	dir := b.TempDir()
	warm, _ := wasmhost.New(ctx, wasmhost.Config{CacheDir: dir})
	Load(ctx, warm, "round_robin", wasm)
	warm.Close(ctx)
	b.Run("compile-disk-cache", func(b *testing.B) {
		for b.Loop() {
			rt, err := wasmhost.New(ctx, wasmhost.Config{CacheDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Load(ctx, rt, "round_robin", wasm); err != nil {
				b.Fatal(err)
			}
			rt.Close(ctx)
		}
	})
	b.Run("instantiate", func(b *testing.B) {
		rt := newRuntime(b)
		m := roundRobin(b, rt)
		set := testSet(b, 1, 1, 1)
		for b.Loop() {
			bal, err := New(m, nil, set, Options{})
			if err != nil {
				b.Fatal(err)
			}
			bal.Close()
		}
	})
}

type mapAttrs map[string]string

func (m mapAttrs) Attr(name string) (string, bool) { v, ok := m[name]; return v, ok }

// The host's services, driven from a pick of a real Go module.
func TestHostServices(t *testing.T) {
	rt := newRuntime(t)
	m, err := Load(context.Background(), rt, "services.wasm", gowasm.Build(t, "./hostabi/lbhost/testdata/services"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	allowed := strings.TrimPrefix(srv.URL, "http://")
	set := testSet(t, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	b, err := New(m, nil, set, Options{MaxInstances: 1, FetchAllowed: func(hp string) bool { return hp == allowed }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pick := func(hash uint64, attrs Attrs) int {
		t.Helper()
		it, _, err := b.Pick(hash, 0, 0, 1, attrs, 0)
		if err != nil {
			t.Fatalf("pick %d: %v", hash, err)
		}
		return int(it.name[0] - 'a')
	}

	t.Run("request attributes", func(t *testing.T) {
		if got := pick(3, mapAttrs{"header:X-Index": "7"}); got != 7 {
			t.Fatalf("picked %d, want 7", got)
		}
		if _, _, err := b.Pick(3, 0, 0, 1, mapAttrs{}, 0); !errors.Is(err, ErrNoEndpoint) {
			t.Fatalf("absent attribute: %v", err)
		}
	})
	t.Run("timers", func(t *testing.T) {
		if got := pick(1, nil); got != 0 {
			t.Fatalf("%d timers fired before any was set", got)
		}
		pick(2, nil)
		pick(2, nil)
		deadline := time.Now().Add(5 * time.Second)
		for pick(1, nil) != 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := pick(1, nil); got != 2 {
			t.Fatalf("%d timers fired of 2", got)
		}
	})
	t.Run("fetch", func(t *testing.T) {
		if got := pick(4, mapAttrs{"query:url": "http://192.0.2.1:80/x"}); got != 1 {
			t.Fatalf("a fetch to a destination not allowed gave %d, want 1 (denied)", got)
		}
		if got := pick(4, mapAttrs{"query:url": "file:///etc/passwd"}); got != 2 {
			t.Fatalf("a non-http URL gave %d, want 2", got)
		}
		if got := pick(4, mapAttrs{"query:url": srv.URL + "/load"}); got != 0 {
			t.Fatalf("an allowed fetch gave %d", got)
		}
		deadline := time.Now().Add(5 * time.Second)
		got := pick(5, nil)
		for got == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			got = pick(5, nil)
		}
		if got != 1 {
			t.Fatalf("fetch result: %d, want 1 (200 ok)", got)
		}
		if got := pick(5, nil); got != 3 {
			t.Fatalf("a result collected twice gave %d, want 3 (unknown)", got)
		}
	})
	t.Run("load samples", func(t *testing.T) {
		if pick(6, nil) != 1 || pick(6, nil) != 0 {
			t.Fatal("the first claim within a ttl is not the only one")
		}
		if got := pick(7, nil); got != 5 {
			t.Fatalf("load read back as %d tenths, want 5", got)
		}
		if load, _, ok := set.Items[0].Load(); !ok || load != 500_000 {
			t.Fatalf("host holds %d, %v", load, ok)
		}
	})
}

// A module that sets timers must export the callback; one that does not is
// refused at load.
func TestTimerWithoutExportIsRefused(t *testing.T) {
	rt := newRuntime(t)
	_, err := Load(context.Background(), rt, "notimer.wasm", gowasm.Build(t, "./hostabi/lbhost/testdata/notimer"))
	if err == nil || !strings.Contains(err.Error(), "imports wproxy_lb_v1.timer_set but lacks the export wproxy_on_timer") {
		t.Fatalf("err = %v", err)
	}
}
