package lbhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wproxy/wproxy/hostabi/wasmhost"
	"github.com/wproxy/wproxy/internal/gowasm"
	"github.com/wproxy/wproxy/internal/wat"
)

// Budgets of the sandbox tests: short, so that the tests are quick, and long
// enough that a well-behaved call never runs past them on a loaded machine.
const (
	testPickBudget = 100 * time.Millisecond
	testCallBudget = 300 * time.Millisecond
	testInitBudget = time.Second
	// lateness bounds how much later than its budget a call may end.
	lateness = 2 * time.Second
)

// logRecorder keeps the messages logged through it.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}

// count returns how many messages were msg.
func (r *logRecorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

func sandboxRuntime(tb testing.TB, cfg wasmhost.Config) *wasmhost.Runtime {
	tb.Helper()
	if cfg.CallBudget == 0 {
		cfg.CallBudget = testCallBudget
	}
	if cfg.InitBudget == 0 {
		cfg.InitBudget = testInitBudget
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	rt, err := wasmhost.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

// hostile loads testdata/hostile/NAME.wat, built with wat2wasm.
func hostile(tb testing.TB, rt *wasmhost.Runtime, name string) *wasmhost.Module {
	tb.Helper()
	m, err := Load(context.Background(), rt, name+".wat", wat.Build(tb, "testdata/hostile/"+name+".wat"))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// hostileBalancer starts a balancer of a hostile module with the test
// budgets, logging to the returned recorder.
func hostileBalancer(tb testing.TB, m *wasmhost.Module, set *Set[*testEP], opts Options) (*Balancer[*testEP], *logRecorder) {
	tb.Helper()
	rec := &logRecorder{}
	opts.Logger = slog.New(rec)
	if opts.PickBudget == 0 {
		opts.PickBudget = testPickBudget
	}
	b, err := New(m, nil, set, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	return b, rec
}

// mustPick picks with hash and wants endpoint want.
func mustPick(tb testing.TB, b *Balancer[*testEP], hash uint64, want string) {
	tb.Helper()
	it, _, err := b.Pick(hash, 0, 0, 0, nil, 0)
	if err != nil || it.name != want {
		tb.Fatalf("pick(hash %d) = %v, %v; want %s", hash, it, err, want)
	}
}

// failPick picks with hash, wants an error containing every one of want,
// and returns it with the time the pick took.
func failPick(tb testing.TB, b *Balancer[*testEP], hash uint64, want ...string) (error, time.Duration) {
	tb.Helper()
	start := time.Now()
	_, _, err := b.Pick(hash, 0, 0, 0, nil, 0)
	took := time.Since(start)
	if err == nil {
		tb.Fatalf("pick(hash %d) succeeded", hash)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			tb.Fatalf("pick(hash %d): %v; want it to contain %q", hash, err, w)
		}
	}
	return err, took
}

// abandonedWithin checks that err is a budget error of a call that took took.
func abandonedWithin(tb testing.TB, err error, took, budget time.Duration) {
	tb.Helper()
	if !errors.Is(err, wasmhost.ErrBudgetExceeded) {
		tb.Fatalf("err = %v, want it to wrap ErrBudgetExceeded", err)
	}
	if took < budget || took > budget+lateness {
		tb.Fatalf("the call took %v with a budget of %v", took, budget)
	}
}

func wantStats(tb testing.TB, b *Balancer[*testEP], want Stats) {
	tb.Helper()
	if got := b.Stats(); got != want {
		tb.Fatalf("stats %+v, want %+v", got, want)
	}
}

// A pick that loops forever is abandoned after its budget; its instance is
// discarded, the failure counted and logged, and the next pick gets a new
// instance.
func TestPickPastBudgetIsAbandoned(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	b, rec := hostileBalancer(t, hostile(t, rt, "loop_pick"), testSet(t, 1, 1, 1), Options{MaxInstances: 1})
	mustPick(t, b, 0, "a")
	err, took := failPick(t, b, 1, "module loop_pick.wat: wproxy_lb_pick: ran past its time budget of 100ms; the call was abandoned")
	abandonedWithin(t, err, took, testPickBudget)
	wantStats(t, b, Stats{Instances: 0, InstancesCreated: 1, Failures: 1})
	if n := rec.count("balancing module failed"); n != 1 {
		t.Fatalf("%d failure lines logged, want 1", n)
	}
	mustPick(t, b, 0, "a")
	wantStats(t, b, Stats{Instances: 1, InstancesCreated: 2, Failures: 1})
}

// Recursion without loops is stopped too, by the checks at function entries.
func TestRecursionPastBudgetIsAbandoned(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	b, _ := hostileBalancer(t, hostile(t, rt, "recurse_pick"), testSet(t, 1, 1), Options{MaxInstances: 1})
	err, took := failPick(t, b, 1, "wproxy_lb_pick: ran past its time budget")
	abandonedWithin(t, err, took, testPickBudget)
	mustPick(t, b, 0, "a")
}

// A module that sleeps (WASI poll_oneoff) past its budget is woken and
// abandoned.
func TestSleepPastBudgetIsAbandoned(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	b, _ := hostileBalancer(t, hostile(t, rt, "sleep_pick"), testSet(t, 1, 1), Options{MaxInstances: 1})
	err, took := failPick(t, b, 1, "wproxy_lb_pick: ran past its time budget")
	abandonedWithin(t, err, took, testPickBudget)
	mustPick(t, b, 0, "a")
}

// Picks that loop on every instance at once are all abandoned, and the
// picks around them are served.
func TestConcurrentPicksPastBudget(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	b, _ := hostileBalancer(t, hostile(t, rt, "loop_pick"), testSet(t, 1, 1, 1), Options{MaxInstances: 3})
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 20 {
				loop := g < 3 && i == 0 // three loops at once, then well-behaved picks
				hash := uint64(0)
				if loop {
					hash = 1
				}
				_, _, err := b.Pick(hash, uint64(i), 0, 0, nil, 0)
				switch {
				case loop && !errors.Is(err, wasmhost.ErrBudgetExceeded):
					t.Errorf("looping pick: %v", err)
				case !loop && err != nil && !errors.Is(err, ErrSuspended):
					t.Errorf("pick: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if s := b.Stats(); s.Failures != 3 {
		t.Fatalf("stats %+v, want 3 failures", s)
	}
}

// A module that fails badly several times in a row is suspended: picks fail
// at once, until the back-off ends and a pick succeeds again.
func TestRepeatedFailuresSuspendModule(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	b, rec := hostileBalancer(t, hostile(t, rt, "trap_pick"), testSet(t, 1, 1), Options{MaxInstances: 1})
	for range wasmhost.BreakerStrikes {
		failPick(t, b, 1, "unreachable")
	}
	if _, _, err := b.Pick(0, 0, 0, 0, nil, 0); !errors.Is(err, ErrSuspended) {
		t.Fatalf("pick after %d traps: %v, want ErrSuspended", wasmhost.BreakerStrikes, err)
	}
	if n := rec.count("balancing module suspended after failing repeatedly; the fallback answers"); n != 1 {
		t.Fatalf("%d suspension lines logged, want 1", n)
	}
	deadline := time.Now().Add(wasmhost.BreakerMinBackoff + lateness)
	for {
		_, _, err := b.Pick(0, 0, 0, 0, nil, 0)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrSuspended) || time.Now().After(deadline) {
			t.Fatalf("pick after the back-off: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := b.Stats(); s.Failures != wasmhost.BreakerStrikes || s.Suspended == 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A module whose init (or start function) never returns fails to load with
// a budget error naming it, instead of hanging.
func TestStartPastBudgetFailsLoad(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	for _, tt := range []struct{ module, want string }{
		{"loop_init", "module loop_init.wat: wproxy_lb_init: ran past its time budget of 1s"},
		{"loop_start", "module loop_start.wat: instantiate: start function: ran past its time budget of 1s"},
	} {
		t.Run(tt.module, func(t *testing.T) {
			m := hostile(t, rt, tt.module)
			start := time.Now()
			_, err := New(m, nil, testSet(t, 1, 1), Options{Logger: slog.New(slog.DiscardHandler)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			abandonedWithin(t, err, time.Since(start), testInitBudget)
		})
	}
}

// A set_endpoints that never returns is abandoned: SetEndpoints fails, the
// previous set stays, and picks go on with it.
func TestSetEndpointsPastBudget(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	b, _ := hostileBalancer(t, hostile(t, rt, "loop_set"), testSet(t, 1, 1, 1), Options{MaxInstances: 1})
	start := time.Now()
	err := b.SetEndpoints(testSet(t, 2, 1, 1, 1))
	if err == nil || !strings.Contains(err.Error(), "module loop_set.wat: wproxy_lb_set_endpoints (version 2, 3 endpoints): ran past its time budget of 300ms") {
		t.Fatalf("err = %v", err)
	}
	abandonedWithin(t, err, time.Since(start), testCallBudget)
	if v := b.Set().Version; v != 1 {
		t.Fatalf("set version %d after a failed update, want 1", v)
	}
	mustPick(t, b, 0, "a")
	wantStats(t, b, Stats{Instances: 1, InstancesCreated: 2, Failures: 1})
}

// A timer callback that never returns is abandoned; the balancer goes on.
func TestTimerPastBudget(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	b, rec := hostileBalancer(t, hostile(t, rt, "loop_timer"), testSet(t, 1, 1), Options{MaxInstances: 2})
	mustPick(t, b, 1, "a") // sets a timer firing at once
	deadline := time.Now().Add(testCallBudget + lateness)
	for b.Stats().Failures == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the looping timer callback was not abandoned")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustPick(t, b, 0, "a")
	if n := rec.count("balancing module failed"); n != 1 {
		t.Fatalf("%d failure lines logged, want 1", n)
	}
}

// Traps in a pick fail the pick; the instance is replaced.
func TestTrapInPick(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	b, _ := hostileBalancer(t, hostile(t, rt, "trap_pick"), testSet(t, 1, 1), Options{MaxInstances: 1})
	failPick(t, b, 1, "module trap_pick.wat: wproxy_lb_pick: wasm error: unreachable")
	mustPick(t, b, 0, "a")
	failPick(t, b, 2, "module trap_pick.wat: wproxy_lb_pick: wasm error: integer divide by zero")
	mustPick(t, b, 0, "a")
	wantStats(t, b, Stats{Instances: 1, InstancesCreated: 3, Failures: 2})
}

// Memory cannot grow past the cap: memory.grow returns -1 there, a module
// that keeps trying is abandoned at its budget, and one that asks for more
// at start is refused.
func TestMemoryCap(t *testing.T) {
	const capPages = 32
	rt := sandboxRuntime(t, wasmhost.Config{MemoryLimitPages: capPages})
	b, _ := hostileBalancer(t, hostile(t, rt, "grow_pick"), testSet(t, 1, 1), Options{MaxInstances: 1})
	// The module returns its size in pages once memory.grow has failed.
	failPick(t, b, 1, fmt.Sprintf("wproxy_lb_pick returned index %d, but the set has 1 endpoints", capPages))
	mustPick(t, b, 0, "a")
	err, took := failPick(t, b, 2, "ran past its time budget")
	abandonedWithin(t, err, took, testPickBudget)
	mustPick(t, b, 0, "a")
	wantStats(t, b, Stats{Instances: 1, InstancesCreated: 2, Failures: 2})

	_, err = Load(context.Background(), rt, "big_memory.wat", wat.Build(t, "testdata/hostile/big_memory.wat"))
	if err == nil || !strings.Contains(err.Error(), "module big_memory.wat: not a valid WebAssembly module") || !strings.Contains(err.Error(), "over limit of 32 pages") {
		t.Fatalf("a module asking for 64 pages with a cap of 32: %v", err)
	}
}

// A Go module that allocates without bound dies when its memory reaches the
// cap (memory.grow fails there); the host discards it and goes on.
func TestGoModuleOutOfMemory(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{MemoryLimitPages: 256}) // 16 MiB
	m, err := Load(context.Background(), rt, "gogrow.wasm", gowasm.Build(t, "./hostabi/lbhost/testdata/hostile/gogrow"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := hostileBalancer(t, m, testSet(t, 1, 1), Options{MaxInstances: 1, PickBudget: 10 * time.Second})
	// Go's runtime ends with a trap (its abort) when memory.grow fails.
	if _, _, err := b.Pick(0, 1, 0, 0, nil, 0); err == nil || !strings.Contains(err.Error(), "module gogrow.wasm: wproxy_lb_pick: memory near its cap (16 of 16 MiB in use): wasm error: unreachable") {
		t.Fatalf("pick that exhausts memory: %v", err)
	}
	mustPick(t, b, 0, "a")
	wantStats(t, b, Stats{Instances: 1, InstancesCreated: 2, Failures: 1})
}

// Indexes out of range and negative values other than -1 are errors; the
// instance, which did nothing wrong to itself, is kept.
func TestBadPickResults(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	b, rec := hostileBalancer(t, hostile(t, rt, "bad_pick"), testSet(t, 1, 1, 1, 1), Options{MaxInstances: 1})
	for hash, want := range map[uint64]string{
		1: "wproxy_lb_pick returned index 3, but the set has 3 endpoints",
		2: "wproxy_lb_pick returned index 2147483647, but the set has 3 endpoints",
		3: "wproxy_lb_pick returned error -2",
		4: "wproxy_lb_pick returned error -2147483648",
		5: "wproxy_lb_pick returned error -1000000",
	} {
		failPick(t, b, hash, "module bad_pick.wat: "+want)
	}
	mustPick(t, b, 0, "a")
	wantStats(t, b, Stats{Instances: 1, InstancesCreated: 1, Failures: 5})
	// Five failures within a second make one line.
	if n := rec.count("balancing module failed"); n != 1 {
		t.Fatalf("%d failure lines logged, want 1", n)
	}
}

// An allocator that returns garbage makes the call that needed the buffer
// fail with an error naming both.
func TestGarbageAllocator(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	m := hostile(t, rt, "bad_alloc")
	set := testSet(t, 1, 1)
	setEps := fmt.Sprintf("wproxy_lb_set_endpoints (version 1, 1 endpoints): wproxy_alloc(%d)", len(set.encoded))
	tests := []struct{ config, want string }{
		{"1", "wproxy_lb_init: wproxy_alloc(1) returned 0: the module could not allocate"},
		{"22", "wproxy_lb_init: wproxy_alloc(2) returned 0xfffffff0: a buffer there would end outside the module's 65536 bytes of memory"},
		{"333", "wproxy_lb_init: wproxy_alloc(3) returned 0xffff: a buffer there would end outside"},
		{"0 endpoints", setEps + " returned 0: the module could not allocate"},
		{"1 endpoints", setEps + " returned 0xfffffff0: a buffer there would end outside"},
		{"2 endpoints", setEps + " returned 0xffff: a buffer there would end outside"},
		{"3 endpoints", setEps + " returned 0xfffc: a buffer there would end outside"},
	}
	for _, tt := range tests {
		t.Run(tt.config, func(t *testing.T) {
			_, err := New(m, []byte(tt.config), set, Options{Logger: slog.New(slog.DiscardHandler)})
			if err == nil || !strings.Contains(err.Error(), "module bad_alloc.wat: "+tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// Every host function answers garbage arguments with its error code, and
// none panics (the module checks the codes; see host_garbage.wat).
func TestHostFunctionsRefuseGarbage(t *testing.T) {
	rt := sandboxRuntime(t, wasmhost.Config{})
	set := testSet(t, 1, 1, 1, 1)
	b, _ := hostileBalancer(t, hostile(t, rt, "host_garbage"), set, Options{MaxInstances: 1})
	it, counted, err := b.Pick(0, 0, 0, 0, mapAttrs{"method": "GET"}, 0)
	if err != nil || it != set.Items[0] || !counted {
		t.Fatalf("pick = %v, %v, %v; want a, counted (an error -10NN names the check NN that failed)", it, counted, err)
	}
	if n := set.Items[0].InFlight(); n != 1 {
		t.Fatalf("endpoint a has %d requests in flight, want the 1 acquired", n)
	}
	wantStats(t, b, Stats{Instances: 1, InstancesCreated: 1})
}
