package wasmhost

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wproxy/wproxy/internal/wat"
)

var testSpec = &Spec{Kind: "test", Marker: "marker"}

func testRuntime(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	r, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	err = r.DefineHostModule(context.Background(), "env", func(b wazero.HostModuleBuilder) wazero.HostModuleBuilder {
		return b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
			s[0] *= 2
		}), []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).Export("twice")
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func renumberInstance(t *testing.T, r *Runtime) *Instance {
	t.Helper()
	m, err := r.Compile(context.Background(), "renumber.wat", wat.Build(t, "testdata/renumber.wat", "--debug-names"), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := m.Instantiate(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close() })
	return inst
}

func call(t *testing.T, inst *Instance, name string, args ...uint64) uint64 {
	t.Helper()
	stack := append(args, 0)
	if err := inst.Call(inst.Function(name), stack); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return stack[0]
}

// Every place that names a function by index still names the same function
// after the sandbox's import shifted the indices.
func TestInstrumentRenumbersFunctions(t *testing.T) {
	inst := renumberInstance(t, testRuntime(t, Config{}))
	if got := call(t, inst, "started"); got != 7 {
		t.Fatalf("the start function did not run: started = %d", got)
	}
	if got := call(t, inst, "direct"); got != 4 {
		t.Fatalf("direct = %d, want twice(two()) = 4", got)
	}
	call(t, inst, "init_passive")
	call(t, inst, "set_from_global")
	for slot, want := range map[uint64]uint64{0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 6: 6} {
		if got := call(t, inst, "indirect", slot); got != want {
			t.Errorf("table slot %d calls a function returning %d, want %d", slot, got, want)
		}
	}
	if name := FuncName(inst.Function("direct")); name != "direct" {
		t.Errorf("FuncName = %q", name)
	}
	// Slot 5 holds the segment's null reference.
	err := inst.Call(inst.Function("indirect"), []uint64{5})
	if err == nil {
		t.Fatal("calling a null table entry did not trap")
	}
}

// A loop calls the host every FuelPerYield iterations: the fuel left after
// n iterations says how many yields refilled it.
func TestLoopsYieldToTheHost(t *testing.T) {
	inst := renumberInstance(t, testRuntime(t, Config{}))
	const n = 3*FuelPerYield + 5
	if got := call(t, inst, "count", n); got != n {
		t.Fatalf("count = %d", got)
	}
	fuel := inst.mod.ExportedGlobal(fuelExport).Get()
	// The checks run at each of the n+1 loop entries; "started", "direct"
	// and the rest made none, so the count started from empty fuel.
	if want := uint64(FuelPerYield - (n+1)%FuelPerYield); fuel != want {
		t.Fatalf("fuel left %d, want %d", fuel, want)
	}
}

// More modules looping for ever than there are threads for Go code: each
// call still ends at its budget, and the garbage collector, which must stop
// every goroutine, completes meanwhile. Compiled code that never entered
// the host would hold its thread and starve both.
func TestLoopsOnEveryThreadEndAtBudget(t *testing.T) {
	r := testRuntime(t, Config{CallBudget: 200 * time.Millisecond})
	m, err := r.Compile(context.Background(), "renumber.wat", wat.Build(t, "testdata/renumber.wat"), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	n := runtime.GOMAXPROCS(0) + 1
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		inst, err := m.Instantiate(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close()
		wg.Go(func() { errs[i] = inst.Call(inst.Function("forever"), nil) })
	}
	time.Sleep(50 * time.Millisecond)
	runtime.GC()
	wg.Wait()
	for i, err := range errs {
		var ce *CallError
		if !errors.Is(err, ErrBudgetExceeded) || !errors.As(err, &ce) {
			t.Errorf("call %d: %v, want a CallError past its budget", i, err)
		}
	}
}

// Interrupt stops a running call with the cause given, and every later
// call.
func TestInterrupt(t *testing.T) {
	inst := renumberInstance(t, testRuntime(t, Config{CallBudget: time.Hour}))
	cause := errors.New("the pool was removed")
	done := make(chan error)
	go func() { done <- inst.Call(inst.Function("forever"), nil) }()
	time.Sleep(20 * time.Millisecond)
	inst.Interrupt(cause)
	if err := <-done; !errors.Is(err, cause) {
		t.Fatalf("interrupted call: %v", err)
	}
	if err := inst.Call(inst.Function("started"), []uint64{0}); !errors.Is(err, cause) {
		t.Fatalf("call after Interrupt: %v", err)
	}
}

// What the rewrite refuses, with the reason.
func TestInstrumentRefuses(t *testing.T) {
	for _, tc := range []struct{ name, wat, want string }{
		{"sandbox export", `(module (memory 1) (func (export "wproxy.sandbox.fuel")))`, `exports "wproxy.sandbox.fuel": names starting with wproxy.sandbox. are the host's`},
		{"sandbox import", `(module (import "wproxy_sandbox" "yield" (func)) (memory 1))`, "imports from wproxy_sandbox, the host's sandbox module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.wat")
			os.WriteFile(path, []byte(tc.wat), 0o644)
			_, err := instrument(wat.Build(t, path))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	for _, bad := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asm\x02\x00\x00\x00"), []byte("\x00asm\x01\x00\x00\x00\x0a\xff")} {
		if _, err := instrument(bad); err == nil {
			t.Errorf("instrument(%q) succeeded", bad)
		}
	}
}

// The rewrite of any module wazero accepts is a module wazero accepts, and
// no input makes the rewrite panic.
func FuzzInstrument(f *testing.F) {
	for _, p := range []string{"testdata/renumber.wat", "../lbhost/testdata/rr.wat", "../lbhost/testdata/nomemory.wat"} {
		f.Add(wat.Build(f, p))
		f.Add(wat.Build(f, p, "--debug-names"))
	}
	hostile, _ := filepath.Glob("../lbhost/testdata/hostile/*.wat")
	for _, p := range hostile {
		f.Add(wat.Build(f, p))
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := instrument(wasm)
		if err != nil {
			// Refused, which is always safe. wazero is not asked about it:
			// its decoder sizes tables by the counts it reads, and a few
			// bytes can claim billions; wazero only ever sees what the
			// rewrite has checked.
			return
		}
		if orig, err := rt.CompileModule(ctx, wasm); err != nil {
			return
		} else {
			orig.Close(ctx)
		}
		cm, err := rt.CompileModule(ctx, out.wasm)
		if err != nil {
			t.Fatalf("wazero accepts the module but not its rewrite: %v", err)
		}
		cm.Close(ctx)
	})
}
