// Package lbhost is the host side of the balancing ABI, wproxy_lb_v1 (see
// ../ABI.md): it checks and loads balancing modules, keeps a pool of module
// instances per balancer, pushes endpoint sets into them, and calls pick.
//
// A Balancer is safe for concurrent use: each pick borrows an idle instance
// (or creates one, up to a limit) so that any number of requests can pick at
// once, and endpoint sets reach each instance before its next pick.
package lbhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"

	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wasmhost"
	"github.com/wproxy/wproxy/hostabi/wire"
)

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// Spec is what version 1 of the balancing ABI requires of a module.
var Spec = &wasmhost.Spec{
	Kind:   "balancing (" + hostabi.LBModuleV1 + ")",
	Marker: hostabi.ExportLBMarkerV1,
	Exports: map[string]wasmhost.Signature{
		hostabi.ExportLBMarkerV1:     {},
		hostabi.ExportAlloc:          {Params: []api.ValueType{i32}, Results: []api.ValueType{i32}},
		hostabi.ExportLBInit:         {Params: []api.ValueType{i32, i32}, Results: []api.ValueType{i32}},
		hostabi.ExportLBSetEndpoints: {Params: []api.ValueType{i64, i32, i32}, Results: []api.ValueType{i32}},
		hostabi.ExportLBPick:         {Params: []api.ValueType{i64, i64, i64, i32}, Results: []api.ValueType{i32}},
	},
	Conditional: map[string]wasmhost.Requirement{
		hostabi.LBModuleV1 + "." + hostabi.ImportTimerSet: {Export: hostabi.ExportOnTimer, Signature: wasmhost.Signature{Params: []api.ValueType{i64}}},
	},
}

// Load compiles a balancing module and checks it against Spec, defining the
// wproxy_lb_v1 host module in rt first if needed. A module that imports
// timer_set must export wproxy_on_timer.
func Load(ctx context.Context, rt *wasmhost.Runtime, source string, wasm []byte) (*wasmhost.Module, error) {
	if err := rt.DefineHostModule(ctx, hostabi.LBModuleV1, defineHost); err != nil {
		return nil, err
	}
	return rt.Compile(ctx, source, wasm, Spec)
}

// Set is an endpoint set as a balancer's modules see it, with the host's item
// for each endpoint (Items[i] is the item of endpoint i). A Set is immutable.
type Set[T Endpoint] struct {
	Version uint64
	Items   []T
	encoded []byte
	eps     []Endpoint // Items as host functions see them
}

// NewSet encodes endpoints, which describe items one to one.
func NewSet[T Endpoint](version uint64, items []T, endpoints []wire.Endpoint) (*Set[T], error) {
	if len(items) != len(endpoints) {
		return nil, fmt.Errorf("endpoint set: %d items for %d endpoints", len(items), len(endpoints))
	}
	enc, err := wire.AppendEndpoints(nil, endpoints)
	if err != nil {
		return nil, err
	}
	eps := make([]Endpoint, len(items))
	for i, it := range items {
		eps[i] = it
	}
	return &Set[T]{Version: version, Items: items, encoded: enc, eps: eps}, nil
}

// ErrNoEndpoint is returned by Pick when the module found no endpoint for the
// request (it returned PickNone), or the set is empty.
var ErrNoEndpoint = errors.New("no endpoint available")

// errClosed is returned by calls on a closed Balancer.
var errClosed = errors.New("balancer closed")

// Options configure a Balancer.
type Options struct {
	// Name identifies the balancer in logs and errors, e.g. the pool name.
	Name string
	// MaxInstances bounds the instances that may run at once. Default
	// GOMAXPROCS: picks never block, so more could not run in parallel.
	MaxInstances int
	// Logger receives the modules' log lines. Default slog.Default().
	Logger *slog.Logger
	// PoolInFlight returns the pool's requests in flight, for
	// pool_inflight. Default: 0.
	PoolInFlight func() int64
	// FetchAllowed reports whether a module may fetch from host:port.
	// Default: nothing is allowed.
	FetchAllowed func(hostport string) bool
}

// Balancer runs one balancing module with one configuration for one pool.
//
// Its instances live in a fixed array of slots, one per instance that may
// run at once. A pick claims an idle slot with one compare-and-swap and
// frees it with one store, scanning from the first slot so that light load
// keeps to few instances; an empty slot gets an instance when every live one
// is busy. This costs a few nanoseconds where a mutex-guarded free list with a
// condition variable cost about 45 ns a pick (RATIONALE.md).
type Balancer[T Endpoint] struct {
	mod    *wasmhost.Module
	config []byte
	name   string
	logger *slog.Logger
	core   *core

	set    atomic.Pointer[Set[T]]
	slots  []slot[T]
	closed atomic.Bool

	// Counters, read by Stats.
	alive            atomic.Int64
	instancesCreated atomic.Uint64
	failures         atomic.Uint64
}

// Slot states.
const (
	slotEmpty    uint32 = iota // no instance
	slotIdle                   // an instance, free to claim
	slotBusy                   // claimed by a pick or an update
	slotCreating               // claimed to create an instance in
	slotDead                   // closed with the balancer
)

type slot[T Endpoint] struct {
	state atomic.Uint32
	inst  *instance[T] // owned by whoever moved state away from idle or empty
	_     [48]byte     // keep slots on separate cache lines
}

type instance[T Endpoint] struct {
	inst                *wasmhost.Instance
	alloc, setEps, pick api.Function
	onTimer             api.Function // nil unless the module has timers
	set                 *Set[T]      // the set this instance has
	view                view         // what host functions see
	stack               [4]uint64
}

// New starts a balancer: it creates the first instance, initialises it with
// config (the pool's policy_config as JSON) and gives it set, so that every
// error a module can report at start surfaces here.
func New[T Endpoint](mod *wasmhost.Module, config []byte, set *Set[T], opts Options) (*Balancer[T], error) {
	if opts.MaxInstances <= 0 {
		opts.MaxInstances = runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Balancer[T]{mod: mod, config: config, name: opts.Name, slots: make([]slot[T], opts.MaxInstances),
		logger: opts.Logger.With("pool", opts.Name), core: newCore(opts.Name, opts)}
	b.core.fire = b.fireTimer
	b.set.Store(set)
	inst, err := b.newInstance()
	if err != nil {
		b.core.close()
		return nil, err
	}
	if err := inst.update(set); err != nil {
		inst.inst.Close()
		b.core.close()
		return nil, err
	}
	b.alive.Store(1)
	b.slots[0].inst = inst
	b.slots[0].state.Store(slotIdle)
	return b, nil
}

// Module returns the module the balancer runs.
func (b *Balancer[T]) Module() *wasmhost.Module { return b.mod }

// Set returns the current endpoint set.
func (b *Balancer[T]) Set() *Set[T] { return b.set.Load() }

// SetEndpoints makes set current. It gives the set to one instance at once,
// so that a module's objection is returned here and the previous set stays;
// the other instances take it before their next pick.
func (b *Balancer[T]) SetEndpoints(set *Set[T]) error {
	s, err := b.acquire()
	if err != nil {
		return err
	}
	if err := s.inst.update(set); err != nil {
		b.discard(s)
		return err
	}
	b.set.Store(set)
	b.release(s)
	return nil
}

// Pick asks the module to choose an endpoint for one request: hash of the
// pool's key (with hostabi.PickHashPresent in flags when the request had
// it), the pool's sequence number and a random number. It returns the chosen
// item, ErrNoEndpoint, or an error describing how the module failed; after a
// failure the caller answers with its fallback.
//
// attrs answers request_attr (nil: no attributes). When the module
// counted the request to the chosen endpoint itself (endpoint_acquire),
// counted is true and the caller must not count it again.
//
// now is the request's time in Clock nanoseconds (0: read the clock when
// needed); host functions answer figures as of then.
func (b *Balancer[T]) Pick(hash, seq, random uint64, flags uint32, attrs Attrs, now int64) (item T, counted bool, err error) {
	var zero T
	s, err := b.acquire()
	if err != nil {
		return zero, false, err
	}
	in := s.inst
	if cur := b.set.Load(); in.set != cur {
		if err := in.update(cur); err != nil {
			b.failures.Add(1)
			b.discard(s)
			return zero, false, err
		}
	}
	in.view.attrs, in.view.acquired, in.view.inPick, in.view.now = attrs, -1, true, now
	in.stack = [4]uint64{hash, seq, random, uint64(flags)}
	err = in.inst.Call(in.pick, in.stack[:])
	acquired := in.view.acquired
	in.view.attrs, in.view.acquired, in.view.inPick = nil, -1, false
	set := in.set
	idx := int32(in.stack[0])
	if err != nil {
		idx = -2
		b.discard(s)
		err = fmt.Errorf("module %s: %s: %w", b.mod.Source, hostabi.ExportLBPick, err)
	} else {
		b.release(s)
	}
	if acquired >= 0 {
		if acquired == idx {
			return set.Items[idx], true, nil
		}
		set.Items[acquired].Release() // counted, then not chosen
	}
	switch {
	case err != nil:
		b.failures.Add(1)
		return zero, false, err
	case idx >= 0 && int(idx) < len(set.Items):
		return set.Items[idx], false, nil
	case idx == hostabi.PickNone:
		return zero, false, ErrNoEndpoint
	case idx >= 0:
		b.failures.Add(1)
		return zero, false, fmt.Errorf("module %s: %s returned index %d, but the set has %d endpoints", b.mod.Source, hostabi.ExportLBPick, idx, len(set.Items))
	default:
		b.failures.Add(1)
		return zero, false, fmt.Errorf("module %s: %s returned error %d", b.mod.Source, hostabi.ExportLBPick, idx)
	}
}

// Stats are a balancer's counters.
type Stats struct {
	Instances        int    // instances alive now
	InstancesCreated uint64 // instances created since start
	Failures         uint64 // picks and updates that failed
}

// Stats returns the balancer's counters.
func (b *Balancer[T]) Stats() Stats {
	return Stats{Instances: int(b.alive.Load()), InstancesCreated: b.instancesCreated.Load(), Failures: b.failures.Load()}
}

// Close releases idle instances now and busy ones when their call returns,
// stops timers and cancels fetches. Picks after Close fail.
func (b *Balancer[T]) Close() {
	b.closed.Store(true)
	b.core.close()
	for i := range b.slots {
		b.reap(&b.slots[i])
	}
}

// fireTimer calls the module's timer export with id on an idle instance.
func (b *Balancer[T]) fireTimer(id uint64) {
	s, err := b.acquire()
	if err != nil {
		return
	}
	in := s.inst
	if cur := b.set.Load(); in.set != cur {
		if err := in.update(cur); err != nil {
			b.failures.Add(1)
			b.discard(s)
			return
		}
	}
	if in.onTimer == nil {
		b.release(s)
		b.logger.Error("timer fired", "err", errNoTimerExport)
		return
	}
	stack := [1]uint64{id}
	if err := in.inst.Call(in.onTimer, stack[:]); err != nil {
		b.failures.Add(1)
		b.discard(s)
		b.logger.Error("timer callback failed", "module", b.mod.Source, "timer", id, "err", err)
		return
	}
	b.release(s)
}

// reap closes the slot's instance if the slot is idle.
func (b *Balancer[T]) reap(s *slot[T]) {
	if s.state.CompareAndSwap(slotIdle, slotDead) {
		s.inst.inst.Close()
		s.inst = nil
		b.alive.Add(-1)
	}
}

func (b *Balancer[T]) acquire() (*slot[T], error) {
	for {
		// Close turns every idle slot dead, so the fast path needs no
		// check of its own.
		for i := range b.slots {
			if s := &b.slots[i]; s.state.CompareAndSwap(slotIdle, slotBusy) {
				return s, nil
			}
		}
		if b.closed.Load() {
			return nil, errClosed
		}
		for i := range b.slots {
			if s := &b.slots[i]; s.state.CompareAndSwap(slotEmpty, slotCreating) {
				inst, err := b.newInstance()
				if err != nil {
					s.state.Store(slotEmpty)
					return nil, err
				}
				b.alive.Add(1)
				s.inst = inst
				s.state.Store(slotBusy)
				return s, nil
			}
		}
		// Every instance is busy and no more may start: picks are short, so
		// let the others finish.
		runtime.Gosched()
	}
}

func (b *Balancer[T]) release(s *slot[T]) {
	s.state.Store(slotIdle)
	if b.closed.Load() {
		b.reap(s)
	}
}

// discard drops a slot's instance after a failure; the slot is refilled when
// needed.
func (b *Balancer[T]) discard(s *slot[T]) {
	s.inst.inst.Close()
	s.inst = nil
	b.alive.Add(-1)
	s.state.Store(slotEmpty)
}

func (b *Balancer[T]) newInstance() (*instance[T], error) {
	inst, err := b.mod.Instantiate(context.Background(), b.logger)
	if err != nil {
		return nil, err
	}
	in := &instance[T]{
		inst:    inst,
		alloc:   inst.Function(hostabi.ExportAlloc),
		setEps:  inst.Function(hostabi.ExportLBSetEndpoints),
		pick:    inst.Function(hostabi.ExportLBPick),
		onTimer: inst.Function(hostabi.ExportOnTimer),
	}
	in.view.core, in.view.acquired = b.core, -1
	inst.Data = &in.view
	if err := in.init(b.config); err != nil {
		inst.Close()
		return nil, err
	}
	b.instancesCreated.Add(1)
	return in, nil
}

func (in *instance[T]) init(config []byte) error {
	src := in.inst
	src.Capture()
	defer src.Captured()
	fail := func(err error) error {
		return fmt.Errorf("module %s: %s: %w%s", in.mod(), hostabi.ExportLBInit, err, src.Captured())
	}
	ptr, err := src.WriteGuest(in.alloc, config)
	if err != nil {
		return fail(err)
	}
	stack := [2]uint64{uint64(ptr), uint64(len(config))}
	if err := src.Call(src.Function(hostabi.ExportLBInit), stack[:]); err != nil {
		return fail(err)
	}
	if e := hostabi.Errno(uint32(stack[0])); e != hostabi.ErrnoOK {
		return fail(fmt.Errorf("errno %d (%s)", uint32(e), e))
	}
	return nil
}

func (in *instance[T]) update(set *Set[T]) error {
	src := in.inst
	src.Capture()
	defer src.Captured()
	fail := func(err error) error {
		return fmt.Errorf("module %s: %s (version %d, %d endpoints): %w%s", in.mod(), hostabi.ExportLBSetEndpoints, set.Version, len(set.Items), err, src.Captured())
	}
	ptr, err := src.WriteGuest(in.alloc, set.encoded)
	if err != nil {
		return fail(err)
	}
	stack := [3]uint64{set.Version, uint64(ptr), uint64(len(set.encoded))}
	if err := src.Call(in.setEps, stack[:]); err != nil {
		return fail(err)
	}
	if e := hostabi.Errno(uint32(stack[0])); e != hostabi.ErrnoOK {
		return fail(fmt.Errorf("errno %d (%s)", uint32(e), e))
	}
	in.set = set
	in.view.items = set.eps
	return nil
}

func (in *instance[T]) mod() string { return in.inst.Source }
