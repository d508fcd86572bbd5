// Package wasmhost runs wproxy's WebAssembly modules: one wazero runtime per
// process with an on-disk compilation cache, compilation deduplicated by
// digest, checks of a module's imports and exports against the ABI it claims,
// and instances whose calls carry their identity to host functions.
//
// It is also the modules' sandbox. An instance's memory is capped
// (Config.MemoryLimitPages), and every call into a module has a time budget:
// a watchdog goroutine per Runtime interrupts a call that runs past it, the
// call returns an error wrapping ErrBudgetExceeded, and the instance's owner
// discards it. Modules are rewritten at compile time so that interrupting
// costs a call nothing but two atomic additions (see sandbox.go and
// SANDBOX.md).
//
// The ABI-specific parts (which exports a balancing module needs, the host
// functions it may import) live in sibling packages such as lbhost; this
// package knows nothing of balancing.
//
// A Runtime and its Modules are safe for concurrent use. An Instance is not:
// its owner calls it from one goroutine at a time.
package wasmhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Defaults of Config.
const (
	// DefaultMemoryLimitPages caps each instance's linear memory: 1024
	// pages of 64 KiB, 64 MiB.
	DefaultMemoryLimitPages = 1024
	// DefaultInitBudget bounds the start of an instance and its init call:
	// a Go module's runtime starts in about 3 ms.
	DefaultInitBudget = 5 * time.Second
	// DefaultCallBudget bounds the other calls whose caller sets no
	// budget of its own: endpoint set updates, timers, health evaluations.
	DefaultCallBudget = time.Second
)

// Config configures a Runtime. The zero value is usable.
type Config struct {
	// CacheDir holds compiled code across restarts. Empty disables the disk
	// cache (compiled code is still shared within the process).
	CacheDir string
	// MemoryLimitPages caps every instance's memory, in 64 KiB pages:
	// memory.grow past it fails (returns -1), and a module that declares a
	// larger minimum or maximum fails to compile. Default
	// DefaultMemoryLimitPages.
	MemoryLimitPages uint32
	// InitBudget bounds the time an instance may take to start (its start
	// function and _initialize) and each call made with
	// Instance.CallInit. Default DefaultInitBudget.
	InitBudget time.Duration
	// CallBudget bounds every call made with Instance.Call or WriteGuest.
	// Default DefaultCallBudget.
	CallBudget time.Duration
	// Logger receives module log lines and output. Default slog.Default().
	Logger *slog.Logger
}

// Runtime compiles and instantiates modules. Close it to release everything.
type Runtime struct {
	rt         wazero.Runtime
	cache      wazero.CompilationCache
	logger     *slog.Logger
	initBudget time.Duration
	callBudget time.Duration
	memLimit   uint64 // bytes
	watchdog   *watchdog

	mu       sync.Mutex
	hostMods map[string]map[string]api.FunctionDefinition // import module → function → definition
	compiled map[[32]byte]wazero.CompiledModule
	seq      atomic.Uint64
}

// New starts a runtime with WASI preview 1 available to modules (no files, no
// arguments, real clocks, a cryptographic random source).
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.MemoryLimitPages == 0 {
		cfg.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.InitBudget <= 0 {
		cfg.InitBudget = DefaultInitBudget
	}
	if cfg.CallBudget <= 0 {
		cfg.CallBudget = DefaultCallBudget
	}
	rc := wazero.NewRuntimeConfigCompiler().WithMemoryLimitPages(cfg.MemoryLimitPages)
	r := &Runtime{logger: cfg.Logger, hostMods: map[string]map[string]api.FunctionDefinition{}, compiled: map[[32]byte]wazero.CompiledModule{},
		initBudget: cfg.InitBudget, callBudget: cfg.CallBudget, memLimit: uint64(cfg.MemoryLimitPages) * 65536}
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm compilation cache %s: %w", cfg.CacheDir, err)
		}
		r.cache = c
		rc = rc.WithCompilationCache(c)
	}
	r.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	r.watchdog = newWatchdog(cfg.InitBudget, cfg.CallBudget)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.rt); err != nil {
		r.Close(ctx)
		return nil, fmt.Errorf("wasi: %w", err)
	}
	r.hostMods[wasi_snapshot_preview1.ModuleName] = r.rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions()
	if err := r.DefineHostModule(ctx, SandboxModule, func(b wazero.HostModuleBuilder) wazero.HostModuleBuilder {
		return b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(sandboxYield), nil, nil).Export(yieldName)
	}); err != nil {
		r.Close(ctx)
		return nil, err
	}
	return r, nil
}

// Close releases the runtime, its compiled code and every instance, and
// stops its watchdog.
func (r *Runtime) Close(ctx context.Context) error {
	r.watchdog.close()
	err := r.rt.Close(ctx)
	if r.cache != nil {
		err = errors.Join(err, r.cache.Close(ctx))
	}
	return err
}

// DefineHostModule instantiates a host module of the given name once per
// runtime; define fills the builder with its functions. Later calls with the
// same name do nothing, so every ABI package can call it when first used.
func (r *Runtime) DefineHostModule(ctx context.Context, name string, define func(wazero.HostModuleBuilder) wazero.HostModuleBuilder) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.hostMods[name]; ok {
		return nil
	}
	m, err := define(r.rt.NewHostModuleBuilder(name)).Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("host module %s: %w", name, err)
	}
	r.hostMods[name] = m.ExportedFunctionDefinitions()
	return nil
}

// Signature is the type of a function: parameter and result value types.
type Signature struct {
	Params, Results []api.ValueType
}

func (s Signature) String() string {
	return "(" + typeNames(s.Params) + ") -> (" + typeNames(s.Results) + ")"
}

func typeNames(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return strings.Join(names, ", ")
}

func (s Signature) matches(def api.FunctionDefinition) bool {
	return bytes.Equal(s.Params, def.ParamTypes()) && bytes.Equal(s.Results, def.ResultTypes())
}

// Spec is what an ABI requires of a module.
type Spec struct {
	// Kind names the module kind in messages, e.g. "balancing".
	Kind string
	// Marker is the export that declares the ABI version.
	Marker string
	// Exports are the functions the module must export, by name.
	Exports map[string]Signature
	// Conditional are exports required of modules that import a function,
	// keyed by "module.function" of the import.
	Conditional map[string]Requirement
}

// Requirement is an export a module must have.
type Requirement struct {
	Export    string
	Signature Signature
}

// Module is a compiled module checked against a Spec. It may be instantiated
// any number of times.
type Module struct {
	rt       *Runtime
	compiled wazero.CompiledModule
	// Source names the module in messages: a built-in name or a file path.
	Source string
	// Digest is the hex SHA-256 of the module's bytes.
	Digest string
}

// Compile compiles wasm (or takes it from the process's or the disk cache) and
// checks it against spec: every required export present with its signature,
// every import offered by the host with the same signature, no imported
// memory. Errors name the module by source and the missing or wrong item.
//
// The module is rewritten for the sandbox first (see sandbox.go); Digest is
// that of the bytes given.
func (r *Runtime) Compile(ctx context.Context, source string, wasm []byte, spec *Spec) (*Module, error) {
	sum := sha256.Sum256(wasm)
	r.mu.Lock()
	cm, ok := r.compiled[sum]
	r.mu.Unlock()
	if !ok {
		inst, err := instrument(wasm)
		if err != nil {
			return nil, fmt.Errorf("module %s: not a valid WebAssembly module: %w", source, err)
		}
		if cm, err = r.rt.CompileModule(ctx, inst.wasm); err != nil {
			return nil, fmt.Errorf("module %s: not a valid WebAssembly module: %w", source, err)
		}
		r.mu.Lock()
		if prev, ok := r.compiled[sum]; ok {
			cm.Close(ctx)
			cm = prev
		} else {
			r.compiled[sum] = cm
		}
		r.mu.Unlock()
	}
	if err := r.check(cm, spec); err != nil {
		return nil, fmt.Errorf("module %s: %w", source, err)
	}
	return &Module{rt: r, compiled: cm, Source: source, Digest: hex.EncodeToString(sum[:])}, nil
}

func (r *Runtime) check(cm wazero.CompiledModule, spec *Spec) error {
	exports := cm.ExportedFunctions()
	if _, ok := exports[spec.Marker]; !ok {
		return fmt.Errorf("missing export %s, the marker of the %s ABI: is it built for this ABI?", spec.Marker, spec.Kind)
	}
	_, command := exports["_start"]
	if _, reactor := exports["_initialize"]; command && !reactor {
		return errors.New("it is built as a command (exports _start, not _initialize): build a reactor, e.g. go build -buildmode=c-shared")
	}
	names := make([]string, 0, len(spec.Exports))
	for n := range spec.Exports {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		want := spec.Exports[name]
		def, ok := exports[name]
		if !ok {
			return fmt.Errorf("missing export %s %s, required by the %s ABI", name, want, spec.Kind)
		}
		if !want.matches(def) {
			return fmt.Errorf("export %s has type %s, the %s ABI requires %s", name, Signature{def.ParamTypes(), def.ResultTypes()}, spec.Kind, want)
		}
	}
	if mems := cm.ImportedMemories(); len(mems) > 0 {
		m, n, _ := mems[0].Import()
		return fmt.Errorf("imports memory %s.%s: a module must define its own memory", m, n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, def := range cm.ImportedFunctions() {
		mod, name, _ := def.Import()
		fns, ok := r.hostMods[mod]
		if !ok {
			return fmt.Errorf("imports %s.%s, but the host offers no module %q (it offers %s)", mod, name, mod, r.offeredLocked())
		}
		have, ok := fns[name]
		if !ok {
			return fmt.Errorf("imports %s.%s, which this host does not provide", mod, name)
		}
		got := Signature{def.ParamTypes(), def.ResultTypes()}
		if want := (Signature{have.ParamTypes(), have.ResultTypes()}); !want.matches(def) {
			return fmt.Errorf("imports %s.%s with type %s, the host provides %s", mod, name, got, want)
		}
		if req, ok := spec.Conditional[mod+"."+name]; ok {
			def, ok := exports[req.Export]
			if !ok {
				return fmt.Errorf("imports %s.%s but lacks the export %s %s that it requires", mod, name, req.Export, req.Signature)
			}
			if !req.Signature.matches(def) {
				return fmt.Errorf("export %s has type %s, the %s ABI requires %s", req.Export, Signature{def.ParamTypes(), def.ResultTypes()}, spec.Kind, req.Signature)
			}
		}
	}
	return nil
}

func (r *Runtime) offeredLocked() string {
	names := make([]string, 0, len(r.hostMods))
	for n := range r.hostMods {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Instance is one instantiation of a Module. Calls into it must come from one
// goroutine at a time; host functions find the Instance from the context of
// the call with FromContext. Interrupt and Interrupted may be called from
// any goroutine.
type Instance struct {
	mod   api.Module
	ctx   context.Context
	rt    *Runtime
	guard guard
	fuel  api.MutableGlobal // the sandbox's fuel (see sandbox.go)
	cause atomic.Pointer[error]
	// stopped is closed when the instance is interrupted, to end a sleep.
	stopped chan struct{}
	// Source names the module the instance runs, as Module.Source does.
	Source string
	// Logger receives the module's log lines and output.
	Logger *slog.Logger
	// Data is the ABI package's state for this instance, for its host
	// functions (see FromContext).
	Data any

	capturing bool
	captured  []string
}

type instanceKey struct{}

// FromContext returns the Instance whose call is running, for host functions.
func FromContext(ctx context.Context) *Instance {
	inst, _ := ctx.Value(instanceKey{}).(*Instance)
	return inst
}

// Instantiate creates an instance, running the module's start function and
// its _initialize function (WASI reactors such as Go's c-shared modules need
// it) when it has them, within the runtime's InitBudget. Output on stdout and
// stderr goes to logger, a line at a time.
func (m *Module) Instantiate(ctx context.Context, logger *slog.Logger) (*Instance, error) {
	if logger == nil {
		logger = m.rt.logger
	}
	logger = logger.With("module", m.Source)
	inst := &Instance{Source: m.Source, Logger: logger, rt: m.rt, stopped: make(chan struct{})}
	inst.guard.inst = inst
	// The instance's context carries its identity to host functions. It is
	// built once so that calls on the hot path allocate nothing.
	inst.ctx = context.WithValue(context.Background(), instanceKey{}, inst)
	inst.capturing = true
	defer func() { inst.capturing = false }()
	// Start functions run below, within a budget: inside InstantiateModule
	// nothing could stop them.
	cfg := wazero.NewModuleConfig().
		WithName(fmt.Sprintf("%s#%d", m.Source, m.rt.seq.Add(1))).
		WithStartFunctions().
		WithStdout(&lineLogger{inst: inst, level: slog.LevelInfo}).
		WithStderr(&lineLogger{inst: inst, level: slog.LevelWarn}).
		WithSysWalltime().WithSysNanotime().WithNanosleep(inst.sleep).
		WithRandSource(rand.Reader)
	mod, err := m.rt.rt.InstantiateModule(inst.ctx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("module %s: instantiate: %w%s", m.Source, err, inst.capturedSuffix())
	}
	// wazero returns a typed nil for a module without memory.
	if mem := mod.Memory(); mem == nil || reflect.ValueOf(mem).IsNil() {
		mod.Close(ctx)
		return nil, fmt.Errorf("module %s defines no memory: the host has nowhere to write its buffers", m.Source)
	}
	fuel, ok := mod.ExportedGlobal(fuelExport).(api.MutableGlobal)
	if !ok {
		mod.Close(ctx)
		return nil, fmt.Errorf("module %s: instantiate: the sandbox's fuel is missing", m.Source)
	}
	inst.mod, inst.fuel = mod, fuel
	m.rt.watchdog.add(&inst.guard)
	for _, name := range []string{startExport, "_initialize"} {
		fn := mod.ExportedFunction(name)
		if fn == nil {
			continue
		}
		if err := inst.CallInit(fn, nil); err != nil {
			msg := inst.capturedSuffix()
			inst.Close()
			if name == startExport {
				name = "start function"
			}
			return nil, fmt.Errorf("module %s: instantiate: %s: %w%s", m.Source, name, err, msg)
		}
	}
	return inst, nil
}

// sleep is the module's nanosleep (WASI poll_oneoff on a clock): it ends
// early when the instance is interrupted.
func (i *Instance) sleep(ns int64) {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-i.stopped:
		panic(*i.cause.Load())
	}
}

// Function returns an exported function; Compile has checked that required
// exports exist.
func (i *Instance) Function(name string) api.Function { return i.mod.ExportedFunction(name) }

// Call calls fn with the instance's identity in its context, within the
// runtime's CallBudget. stack holds the parameters on entry and the results
// on return (see api.Function.CallWithStack).
//
// After an error the instance may be unusable (a trap can leave its state
// inconsistent, an interrupted instance traps at once): its owner closes it.
func (i *Instance) Call(fn api.Function, stack []uint64) error {
	return i.CallWithin(fn, stack, i.rt.callBudget)
}

// CallInit is Call within the runtime's InitBudget, for an ABI's init call.
func (i *Instance) CallInit(fn api.Function, stack []uint64) error {
	return i.CallWithin(fn, stack, i.rt.initBudget)
}

// CallWithin is Call within budget. A call that does not return normally
// returns a *CallError. A call that runs past its budget is interrupted by
// the runtime's watchdog (within two ticks: a quarter of the shortest budget
// the runtime knows, at least a millisecond) and its error wraps
// ErrBudgetExceeded. A budget of zero or less means the
// runtime's CallBudget. The watch costs the call two atomic additions.
func (i *Instance) CallWithin(fn api.Function, stack []uint64, budget time.Duration) error {
	g := &i.guard
	if budget <= 0 {
		budget = i.rt.callBudget
	}
	if g.budget.Load() != int64(budget) {
		g.budget.Store(int64(budget))
	}
	if cause := i.cause.Load(); cause != nil {
		return &CallError{*cause}
	}
	g.calls.Add(1)
	err := fn.CallWithStack(i.ctx, stack)
	if g.calls.Add(1)&callKilled != 0 {
		// Abandoned, even if it returned in the meantime: the flag is
		// set, or about to be.
		return &CallError{BudgetError(budget)}
	}
	if err != nil {
		return i.failure(err)
	}
	return nil
}

// CallUnwatched calls fn without the instance's own watch, for a caller that
// watches its calls itself (with Runtime.Watch and Interrupt) on a path
// where the two atomic additions of CallWithin matter. When the instance was
// interrupted, the error wraps the cause given to Interrupt.
func (i *Instance) CallUnwatched(fn api.Function, stack []uint64) error {
	if cause := i.cause.Load(); cause != nil {
		return &CallError{*cause}
	}
	if err := fn.CallWithStack(i.ctx, stack); err != nil {
		return i.failure(err)
	}
	return nil
}

// failure turns a call's error into the cause of an interruption when there
// was one: the trap it caused says nothing useful.
func (i *Instance) failure(err error) error {
	if cause := i.cause.Load(); cause != nil {
		return &CallError{*cause}
	}
	// A module whose memory cannot grow usually traps or exits soon after
	// (Go's runtime aborts): say so when the memory is near its cap.
	if mem := i.mod.Memory(); mem != nil && i.rt.memLimit > 0 {
		if size := uint64(mem.Size()); size*4 >= i.rt.memLimit*3 {
			err = fmt.Errorf("memory near its cap (%d of %d MiB in use): %w", size>>20, i.rt.memLimit>>20, err)
		}
	}
	return &CallError{err}
}

// CallError is the error of a call into a module that did not return
// normally: it trapped, exited (proc_exit) or was interrupted. Its instance
// is unusable; its owner closes it. Error returns Err's message.
type CallError struct{ Err error }

func (e *CallError) Error() string { return e.Err.Error() }
func (e *CallError) Unwrap() error { return e.Err }

// Module returns the module's runtime.
func (m *Module) Runtime() *Runtime { return m.rt }

// Interrupt stops the instance: the call running now, if any, traps at its
// next yield to the host (within FuelPerYield loop iterations and function
// entries), or at once when it sleeps, and every later call fails. Calls that fail because of it return cause. Only the
// first Interrupt of an instance counts. Safe to call from any goroutine,
// also after Close.
func (i *Instance) Interrupt(cause error) {
	if !i.cause.CompareAndSwap(nil, &cause) {
		return
	}
	close(i.stopped)
}

// sandboxYield is the host function the sandbox calls when a call has spent
// its fuel: it traps a call that was interrupted and refills the fuel of
// one that goes on. Entering Go here is also what lets the scheduler
// preempt a module that runs long, and the garbage collector stop it.
func sandboxYield(ctx context.Context, _ api.Module, _ []uint64) {
	inst := FromContext(ctx)
	if inst == nil {
		return
	}
	if cause := inst.cause.Load(); cause != nil {
		panic(*cause)
	}
	inst.fuel.Set(FuelPerYield)
}

// Interrupted returns the cause given to Interrupt, or nil.
func (i *Instance) Interrupted() error {
	if cause := i.cause.Load(); cause != nil {
		return *cause
	}
	return nil
}

// Watch calls scan from the runtime's watchdog goroutine at least every
// period / 4 (and at least every 100 ms), with the time since the runtime
// started, until stop is called; stop waits for a running scan to end. It
// is for owners of instances that watch their calls themselves (see
// CallUnwatched): scan finds the calls past their budget and Interrupts
// their instances. scan must be quick and must not call Watch or stop.
func (r *Runtime) Watch(period time.Duration, scan func(now time.Duration)) (stop func()) {
	return r.watchdog.watch(period, scan)
}

// Memory returns the instance's memory.
func (i *Instance) Memory() api.Memory { return i.mod.Memory() }

// Close releases the instance.
func (i *Instance) Close() error {
	i.rt.watchdog.remove(&i.guard)
	return i.mod.Close(context.Background())
}

// Capture starts collecting the error lines the module logs, for a call whose
// failure should quote them; Captured returns them and stops collecting.
func (i *Instance) Capture() { i.capturing, i.captured = true, nil }

// Captured returns the lines collected since Capture, joined, and stops.
func (i *Instance) Captured() string {
	s := i.capturedSuffix()
	i.capturing, i.captured = false, nil
	return s
}

func (i *Instance) capturedSuffix() string {
	if len(i.captured) == 0 {
		return ""
	}
	return ": " + strings.Join(i.captured, "; ")
}

// LogLine records a line a module logged: to the logger, and to the captured
// lines when it is an error and a capture runs.
func (i *Instance) LogLine(level slog.Level, msg string) {
	if i.capturing && level >= slog.LevelWarn && len(i.captured) < 8 {
		i.captured = append(i.captured, msg)
	}
	i.Logger.Log(context.Background(), level, msg)
}

// WriteGuest copies data into a guest buffer obtained from the module's
// allocator export (called as alloc(size i32) -> ptr i32) and returns the
// pointer.
func (i *Instance) WriteGuest(alloc api.Function, data []byte) (uint32, error) {
	stack := [1]uint64{uint64(len(data))}
	if err := i.Call(alloc, stack[:]); err != nil {
		return 0, fmt.Errorf("%s(%d): %w", FuncName(alloc), len(data), err)
	}
	ptr := uint32(stack[0])
	if ptr == 0 {
		return 0, fmt.Errorf("%s(%d) returned 0: the module could not allocate", FuncName(alloc), len(data))
	}
	if !i.mod.Memory().Write(ptr, data) {
		return 0, fmt.Errorf("%s(%d) returned %#x: a buffer there would end outside the module's %d bytes of memory", FuncName(alloc), len(data), ptr, i.mod.Memory().Size())
	}
	return ptr, nil
}

// FuncName names an exported function for messages: by its export name
// (modules are often built without a name section).
func FuncName(fn api.Function) string {
	d := fn.Definition()
	if names := d.ExportNames(); len(names) > 0 {
		return names[0]
	}
	if d.Name() != "" {
		return d.Name()
	}
	return fmt.Sprintf("function %d", d.Index())
}

// lineLogger turns a module's stdout or stderr into log lines.
type lineLogger struct {
	inst  *Instance
	level slog.Level
	buf   []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.inst.LogLine(l.level, string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 4096 {
		l.inst.LogLine(l.level, string(l.buf))
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

// HostLog is the log host function every ABI offers:
// (level i32, msg_ptr i32, msg_len i32) -> (). Levels are hostabi.LogDebug to
// hostabi.LogError; at most 4096 bytes are read.
func HostLog(ctx context.Context, m api.Module, stack []uint64) {
	inst := FromContext(ctx)
	if inst == nil {
		return
	}
	level, ptr, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
	const maxLine = 4096
	msg, ok := m.Memory().Read(ptr, min(n, maxLine))
	if !ok {
		inst.LogLine(slog.LevelWarn, fmt.Sprintf("log: message at %#x (%d bytes) lies outside memory", ptr, n))
		return
	}
	var l slog.Level
	switch {
	case level <= 0:
		l = slog.LevelDebug
	case level == 1:
		l = slog.LevelInfo
	case level == 2:
		l = slog.LevelWarn
	default:
		l = slog.LevelError
	}
	inst.LogLine(l, string(msg))
}
