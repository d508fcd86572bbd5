// Package healthhost is the host side of the health evaluation ABI,
// wproxy_health_v1 (see ../ABI.md): it loads evaluator modules and asks them
// to judge probes.
//
// Probes come a few times a second per pool at most, so an Evaluator runs
// one module instance and serializes calls; an instance that traps or exits
// is discarded and a new one answers the next probe. An Evaluator is safe for
// concurrent use.
package healthhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wasmhost"
	"github.com/wproxy/wproxy/hostabi/wire"
)

const i32 = api.ValueTypeI32

// Spec is what version 1 of the health ABI requires of a module.
var Spec = &wasmhost.Spec{
	Kind:   "health (" + hostabi.HealthModuleV1 + ")",
	Marker: hostabi.ExportHealthMarkerV1,
	Exports: map[string]wasmhost.Signature{
		hostabi.ExportHealthMarkerV1: {},
		hostabi.ExportAlloc:          {Params: []api.ValueType{i32}, Results: []api.ValueType{i32}},
		hostabi.ExportHealthInit:     {Params: []api.ValueType{i32, i32}, Results: []api.ValueType{i32}},
		hostabi.ExportHealthEvaluate: {Params: []api.ValueType{i32, i32}, Results: []api.ValueType{i32}},
	},
}

// Load compiles a health evaluator and checks it against Spec.
func Load(ctx context.Context, rt *wasmhost.Runtime, source string, wasm []byte) (*wasmhost.Module, error) {
	if err := rt.DefineHostModule(ctx, hostabi.HealthModuleV1, func(b wazero.HostModuleBuilder) wazero.HostModuleBuilder {
		return b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(wasmhost.HostLog), []api.ValueType{i32, i32, i32}, nil).Export(hostabi.ImportLog)
	}); err != nil {
		return nil, err
	}
	return rt.Compile(ctx, source, wasm, Spec)
}

// Verdict is an evaluator's judgement of a probe.
type Verdict int32

// Verdicts.
const (
	Healthy   = Verdict(hostabi.VerdictHealthy)
	Degraded  = Verdict(hostabi.VerdictDegraded)
	Unhealthy = Verdict(hostabi.VerdictUnhealthy)
)

func (v Verdict) String() string {
	switch v {
	case Healthy:
		return "healthy"
	case Degraded:
		return "degraded"
	case Unhealthy:
		return "unhealthy"
	}
	return fmt.Sprintf("verdict(%d)", int32(v))
}

// Evaluator runs one evaluator module with one configuration.
type Evaluator struct {
	mod    *wasmhost.Module
	config []byte
	logger *slog.Logger

	mu       sync.Mutex
	inst     *wasmhost.Instance
	closed   bool
	buf      []byte
	failures int
}

// New starts an evaluator: it instantiates the module and initialises it
// with config (JSON), so that every error it can report at start surfaces
// here.
func New(mod *wasmhost.Module, config []byte, logger *slog.Logger) (*Evaluator, error) {
	if logger == nil {
		logger = slog.Default()
	}
	e := &Evaluator{mod: mod, config: config, logger: logger}
	inst, err := e.instantiate()
	if err != nil {
		return nil, err
	}
	e.inst = inst
	return e, nil
}

func (e *Evaluator) instantiate() (*wasmhost.Instance, error) {
	inst, err := e.mod.Instantiate(context.Background(), e.logger)
	if err != nil {
		return nil, err
	}
	inst.Capture()
	defer inst.Captured()
	fail := func(err error) (*wasmhost.Instance, error) {
		msg := inst.Captured()
		inst.Close()
		return nil, fmt.Errorf("module %s: %s: %w%s", e.mod.Source, hostabi.ExportHealthInit, err, msg)
	}
	ptr, err := inst.WriteGuest(inst.Function(hostabi.ExportAlloc), e.config)
	if err != nil {
		return fail(err)
	}
	stack := [2]uint64{uint64(ptr), uint64(len(e.config))}
	if err := inst.Call(inst.Function(hostabi.ExportHealthInit), stack[:]); err != nil {
		return fail(err)
	}
	if code := hostabi.Errno(uint32(stack[0])); code != hostabi.ErrnoOK {
		return fail(fmt.Errorf("errno %d (%s)", uint32(code), code))
	}
	return inst, nil
}

var errClosed = errors.New("evaluator closed")

// Evaluate asks the module to judge a probe. On an error the caller applies
// its own rule; the instance is replaced when it trapped.
func (e *Evaluator) Evaluate(p *wire.Probe) (Verdict, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Unhealthy, errClosed
	}
	if e.inst == nil {
		inst, err := e.instantiate()
		if err != nil {
			return Unhealthy, err
		}
		e.inst = inst
	}
	var err error
	if e.buf, err = wire.AppendProbe(e.buf[:0], p); err != nil {
		return Unhealthy, err
	}
	inst := e.inst
	ptr, err := inst.WriteGuest(inst.Function(hostabi.ExportAlloc), e.buf)
	if err == nil {
		stack := [2]uint64{uint64(ptr), uint64(len(e.buf))}
		if err = inst.Call(inst.Function(hostabi.ExportHealthEvaluate), stack[:]); err == nil {
			v := Verdict(int32(stack[0]))
			if v >= Healthy && v <= Unhealthy {
				return v, nil
			}
			e.failures++
			return Unhealthy, fmt.Errorf("module %s: %s returned %d", e.mod.Source, hostabi.ExportHealthEvaluate, int32(v))
		}
	}
	e.failures++
	inst.Close()
	e.inst = nil
	return Unhealthy, fmt.Errorf("module %s: %s: %w", e.mod.Source, hostabi.ExportHealthEvaluate, err)
}

// Failures returns how many evaluations failed.
func (e *Evaluator) Failures() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failures
}

// Close releases the instance.
func (e *Evaluator) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	if e.inst != nil {
		e.inst.Close()
		e.inst = nil
	}
}
