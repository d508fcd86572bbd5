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
	"time"

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

// ErrSuspended is returned by Pick while the balancer skips its module
// because it failed badly several times in a row (see wasmhost.Breaker):
// the caller answers with its fallback, as after any failure.
var ErrSuspended = errors.New("the module is suspended after failing repeatedly")

// DefaultPickBudget bounds a pick. A pick costs about 100 ns to 10 µs; the
// budget leaves room for the rare long one (a Go module's garbage
// collection took 6 to 40 ms with a heap of 1 to 8 MiB) while bounding what
// a looping module costs a request. See SANDBOX.md.
const DefaultPickBudget = 20 * time.Millisecond

// Options configure a Balancer.
type Options struct {
	// Name identifies the balancer in logs and errors, e.g. the pool name.
	Name string
	// MaxInstances bounds the instances that may run at once. Default
	// GOMAXPROCS: picks never block, so more could not run in parallel.
	MaxInstances int
	// PickBudget bounds each call of wproxy_lb_pick: a pick still running
	// after it is abandoned, its instance discarded, and Pick returns an
	// error wrapping wasmhost.ErrBudgetExceeded. Default
	// DefaultPickBudget. The module's other calls have the runtime's
	// budgets (wasmhost.Config): InitBudget for instantiation and
	// wproxy_lb_init, CallBudget for wproxy_alloc, wproxy_lb_set_endpoints
	// and wproxy_on_timer.
	PickBudget time.Duration
	// Logger receives the modules' log lines and the balancer's failures
	// (at most a line a second). Default slog.Default().
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
// frees it with another, scanning from the first slot so that light load
// keeps to few instances; an empty slot gets an instance when every live one
// is busy. This costs a few nanoseconds where a mutex-guarded free list with a
// condition variable cost about 45 ns a pick (RATIONALE.md).
//
// The same two operations let the runtime's watchdog see picks past their
// budget: each claim gives the slot's word a new generation, and a scan
// (wasmhost.Runtime.Watch) interrupts the instance of a slot it has seen
// claimed by one pick for longer than PickBudget, so a pick pays nothing
// more for its budget.
type Balancer[T Endpoint] struct {
	mod        *wasmhost.Module
	config     []byte
	name       string
	logger     *slog.Logger
	core       *core
	pickBudget time.Duration
	unwatch    func()
	breaker    wasmhost.Breaker

	set    atomic.Pointer[Set[T]]
	slots  []slot[T]
	closed atomic.Bool

	// Counters, read by Stats.
	alive            atomic.Int64
	instancesCreated atomic.Uint64
	failures         atomic.Uint64
	suspended        atomic.Uint64

	lastLog      atomic.Int64  // Clock of the last failure logged
	loggedFailed atomic.Uint64 // failures when it was logged
}

// A slot's word holds its state in the low bits and a generation above,
// which changes whenever the slot changes hands, so that the watchdog's scan
// tells one pick from the next.
const (
	slotEmpty    uint64 = iota // no instance
	slotIdle                   // an instance, free to claim
	slotPick                   // claimed by a pick, watched by the scan
	slotBusy                   // claimed for an update or a timer: those calls watch themselves
	slotCreating               // claimed to create an instance in
	slotDead                   // closed with the balancer

	slotStateMask uint64 = 7
	slotKilled    uint64 = 8 // the scan interrupted the pick
	slotGen       uint64 = 16
)

// nextGen returns w's generation, advanced, with no state.
func nextGen(w uint64) uint64 { return w&^(slotStateMask|slotKilled) + slotGen }

type slot[T Endpoint] struct {
	word atomic.Uint64
	inst atomic.Pointer[instance[T]] // changed only by whoever holds the slot
	// Owned by the scan.
	seen  uint64
	since time.Duration
	_     [32]byte // keep slots on separate cache lines
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
	if opts.PickBudget <= 0 {
		opts.PickBudget = DefaultPickBudget
	}
	b := &Balancer[T]{mod: mod, config: config, name: opts.Name, slots: make([]slot[T], opts.MaxInstances),
		logger: opts.Logger.With("pool", opts.Name), core: newCore(opts.Name, opts), pickBudget: opts.PickBudget}
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
	b.slots[0].inst.Store(inst)
	b.slots[0].word.Store(slotIdle)
	b.unwatch = mod.Runtime().Watch(b.pickBudget, b.scan)
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
	s, w, err := b.acquire(slotBusy)
	if err != nil {
		return err
	}
	in := s.inst.Load()
	if err := in.update(set); err != nil {
		b.discard(s, in)
		b.failed(err)
		return err
	}
	b.set.Store(set)
	b.release(s, w)
	return nil
}

// Pick asks the module to choose an endpoint for one request: hash of the
// pool's key (with hostabi.PickHashPresent in flags when the request had
// it), the pool's sequence number and a random number. It returns the chosen
// item, ErrNoEndpoint, or an error describing how the module failed; after a
// failure the caller answers with its fallback. A pick that runs past the
// balancer's PickBudget is abandoned; while the module is suspended after
// repeated failures, Pick returns ErrSuspended at once.
//
// attrs answers request_attr (nil: no attributes). When the module
// counted the request to the chosen endpoint itself (endpoint_acquire),
// counted is true and the caller must not count it again.
//
// now is the request's time in Clock nanoseconds (0: read the clock when
// needed); host functions answer figures as of then.
func (b *Balancer[T]) Pick(hash, seq, random uint64, flags uint32, attrs Attrs, now int64) (item T, counted bool, err error) {
	var zero T
	if b.breaker.Tripped() {
		if now == 0 {
			now = Clock()
		}
		if b.breaker.Open(now) {
			b.suspended.Add(1)
			return zero, false, fmt.Errorf("module %s: %w", b.mod.Source, ErrSuspended)
		}
	}
	s, w, err := b.acquire(slotPick)
	if err != nil {
		return zero, false, err
	}
	in := s.inst.Load()
	if cur := b.set.Load(); in.set != cur {
		// The update is watched as updates are, not as the pick.
		var ok bool
		if w, ok = b.mark(s, w, slotBusy); ok {
			if err := in.update(cur); err != nil {
				b.discard(s, in)
				b.failed(err)
				return zero, false, err
			}
			w, ok = b.mark(s, w, slotPick)
		}
		if !ok {
			return zero, false, b.abandoned(s, in)
		}
	}
	in.view.attrs, in.view.acquired, in.view.inPick, in.view.now = attrs, -1, true, now
	in.stack = [4]uint64{hash, seq, random, uint64(flags)}
	err = in.inst.CallUnwatched(in.pick, in.stack[:])
	acquired := in.view.acquired
	in.view.attrs, in.view.acquired, in.view.inPick = nil, -1, false
	set := in.set
	idx := int32(in.stack[0])
	if err == nil && !b.release(s, w) {
		// The scan abandoned the pick as it returned: the pick ran to its
		// end (a goroutine descheduled while it held the slot looks like
		// a long pick), so its answer stands; the instance, interrupted,
		// goes.
		b.discard(s, in)
	} else if err != nil {
		idx = -2
		b.discard(s, in)
		err = fmt.Errorf("module %s: %s: %w", b.mod.Source, hostabi.ExportLBPick, err)
	}
	if acquired >= 0 {
		if acquired == idx {
			b.breaker.Succeeded()
			return set.Items[idx], true, nil
		}
		set.Items[acquired].Release() // counted, then not chosen
	}
	switch {
	case err != nil:
		b.failed(err)
		return zero, false, err
	case idx >= 0 && int(idx) < len(set.Items):
		b.breaker.Succeeded()
		return set.Items[idx], false, nil
	case idx == hostabi.PickNone:
		b.breaker.Succeeded()
		return zero, false, ErrNoEndpoint
	case idx >= 0:
		err = fmt.Errorf("module %s: %s returned index %d, but the set has %d endpoints", b.mod.Source, hostabi.ExportLBPick, idx, len(set.Items))
	default:
		err = fmt.Errorf("module %s: %s returned error %d", b.mod.Source, hostabi.ExportLBPick, idx)
	}
	b.failed(err)
	return zero, false, err
}

// abandoned discards the instance of a slot whose pick the scan interrupted
// while the holder was not calling it, and returns the error.
func (b *Balancer[T]) abandoned(s *slot[T], in *instance[T]) error {
	b.discard(s, in)
	err := fmt.Errorf("module %s: %s: %w", b.mod.Source, hostabi.ExportLBPick, &wasmhost.CallError{Err: wasmhost.BudgetError(b.pickBudget)})
	b.failed(err)
	return err
}

// Stats are a balancer's counters.
type Stats struct {
	Instances        int    // instances alive now
	InstancesCreated uint64 // instances created since start
	Failures         uint64 // calls that failed: picks, updates, timers, instance starts
	Suspended        uint64 // picks refused while the module was suspended
}

// Stats returns the balancer's counters.
func (b *Balancer[T]) Stats() Stats {
	return Stats{Instances: int(b.alive.Load()), InstancesCreated: b.instancesCreated.Load(), Failures: b.failures.Load(),
		Suspended: b.suspended.Load()}
}

// Close releases idle instances now and busy ones when their call returns,
// stops timers and cancels fetches. Picks after Close fail.
func (b *Balancer[T]) Close() {
	if b.closed.Swap(true) {
		return
	}
	b.unwatch()
	b.core.close()
	for i := range b.slots {
		b.reap(&b.slots[i])
	}
}

// fireTimer calls the module's timer export with id on an idle instance.
func (b *Balancer[T]) fireTimer(id uint64) {
	s, w, err := b.acquire(slotBusy)
	if err != nil {
		return
	}
	in := s.inst.Load()
	if cur := b.set.Load(); in.set != cur {
		if err := in.update(cur); err != nil {
			b.discard(s, in)
			b.failed(err)
			return
		}
	}
	if in.onTimer == nil {
		b.release(s, w)
		b.logger.Error("timer fired", "err", errNoTimerExport)
		return
	}
	stack := [1]uint64{id}
	if err := in.inst.Call(in.onTimer, stack[:]); err != nil {
		b.discard(s, in)
		b.failed(fmt.Errorf("module %s: %s(%d): %w", b.mod.Source, hostabi.ExportOnTimer, id, err))
		return
	}
	b.release(s, w)
}

// scan runs on the runtime's watchdog: it interrupts the instance of every
// slot it has seen held by the same pick for longer than the pick budget.
// Between the scan's compare-and-swap and the holder's, exactly one wins: if
// the scan does, the holder learns that its pick was abandoned.
func (b *Balancer[T]) scan(now time.Duration) {
	for i := range b.slots {
		s := &b.slots[i]
		w := s.word.Load()
		if w&slotStateMask != slotPick || w&slotKilled != 0 {
			continue
		}
		if w != s.seen {
			s.seen, s.since = w, now
			continue
		}
		if now-s.since < b.pickBudget {
			continue
		}
		// The instance is read before the word is marked: while the
		// word is unchanged, it is the instance of that pick.
		if in := s.inst.Load(); in != nil && s.word.CompareAndSwap(w, w|slotKilled) {
			in.inst.Interrupt(wasmhost.BudgetError(b.pickBudget))
		}
	}
}

// failed counts a failure and logs it, at most once a second; failures of
// calls that did not return (traps, exits, budgets) count towards
// suspending the module.
func (b *Balancer[T]) failed(err error) {
	n := b.failures.Add(1)
	now := Clock()
	var ce *wasmhost.CallError
	if errors.As(err, &ce) {
		if d := b.breaker.Failed(now); d > 0 {
			b.logger.Error("balancing module suspended after failing repeatedly; the fallback answers", "module", b.mod.Source, "for", d, "err", err)
			return
		}
	}
	last := b.lastLog.Load()
	if last != 0 && now-last < int64(time.Second) || !b.lastLog.CompareAndSwap(last, now) {
		return
	}
	since := n - b.loggedFailed.Swap(n)
	b.logger.Error("balancing module failed", "module", b.mod.Source, "err", err, "failures", since)
}

// reap closes the slot's instance if the slot is idle.
func (b *Balancer[T]) reap(s *slot[T]) {
	w := s.word.Load()
	if w&slotStateMask == slotIdle && s.word.CompareAndSwap(w, nextGen(w)|slotDead) {
		s.inst.Load().inst.Close()
		s.inst.Store(nil)
		b.alive.Add(-1)
	}
}

// acquire claims a slot for state (slotPick or slotBusy) and returns it with
// its word.
func (b *Balancer[T]) acquire(state uint64) (*slot[T], uint64, error) {
	for {
		// Close turns every idle slot dead, so the fast path needs no
		// check of its own.
		for i := range b.slots {
			s := &b.slots[i]
			if w := s.word.Load(); w&slotStateMask == slotIdle {
				if nw := w&^slotStateMask | state; s.word.CompareAndSwap(w, nw) {
					return s, nw, nil
				}
			}
		}
		if b.closed.Load() {
			return nil, 0, errClosed
		}
		for i := range b.slots {
			s := &b.slots[i]
			if w := s.word.Load(); w&slotStateMask == slotEmpty && s.word.CompareAndSwap(w, nextGen(w)|slotCreating) {
				w = nextGen(w)
				inst, err := b.newInstance()
				if err != nil {
					s.word.Store(nextGen(w) | slotEmpty)
					b.failed(err)
					return nil, 0, err
				}
				b.alive.Add(1)
				s.inst.Store(inst)
				nw := nextGen(w) | state
				s.word.Store(nw)
				return s, nw, nil
			}
		}
		// Every instance is busy and no more may start: picks are short, so
		// let the others finish.
		runtime.Gosched()
	}
}

// mark moves a held slot to another state, with a new generation; false
// means the scan abandoned the pick that held it.
func (b *Balancer[T]) mark(s *slot[T], w, state uint64) (uint64, bool) {
	nw := nextGen(w) | state
	return nw, s.word.CompareAndSwap(w, nw)
}

// release frees a held slot; false means the scan abandoned the pick that
// held it, and the caller discards the instance.
func (b *Balancer[T]) release(s *slot[T], w uint64) bool {
	if !s.word.CompareAndSwap(w, nextGen(w)|slotIdle) {
		return false
	}
	if b.closed.Load() {
		b.reap(s)
	}
	return true
}

// discard drops a held slot's instance after a failure; the slot is
// refilled when needed.
func (b *Balancer[T]) discard(s *slot[T], in *instance[T]) {
	in.inst.Close()
	s.inst.Store(nil)
	b.alive.Add(-1)
	s.word.Store(nextGen(s.word.Load()) | slotEmpty)
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
	if err := src.CallInit(src.Function(hostabi.ExportLBInit), stack[:]); err != nil {
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
