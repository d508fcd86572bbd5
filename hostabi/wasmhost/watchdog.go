package wasmhost

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBudgetExceeded is wrapped by the error of a call that ran past its time
// budget and was abandoned. The instance is then unusable: its owner closes
// it.
var ErrBudgetExceeded = errors.New("ran past its time budget")

// BudgetError returns the error of a call abandoned after budget.
func BudgetError(budget time.Duration) error {
	return fmt.Errorf("%w of %v; the call was abandoned", ErrBudgetExceeded, budget)
}

// Watchdog ticks. The watchdog wakes every tick to look for calls past their
// budget, so a call is abandoned between its budget and its budget plus two
// ticks. A tick is a quarter of the shortest budget watched, within these
// bounds.
const (
	minTick = time.Millisecond
	maxTick = 100 * time.Millisecond
)

// watchdog is a Runtime's one goroutine that stops calls running past their
// budget. It watches the calls of Instances (each one's guard) and runs the
// scans that owners of instances register with Runtime.Watch.
type watchdog struct {
	epoch time.Time

	mu     sync.Mutex
	guards map[*guard]struct{}
	scans  map[*scan]struct{}
	tick   time.Duration // the current tick; recomputed when scans change
	base   time.Duration // the tick the runtime's own budgets need
	wake   chan struct{} // a shorter tick is needed now
	stop   chan struct{}
	done   chan struct{}
}

type scan struct {
	period time.Duration
	fn     func(now time.Duration)
}

// Guard bits: a guard's calls count rises by one when a call starts and by
// one when it ends, so it is odd during a call; the watchdog sets killed on
// a call it abandons.
const (
	callRunning uint64 = 1
	callKilled  uint64 = 1 << 62
)

// guard watches the calls of one instance.
type guard struct {
	inst   *Instance
	calls  atomic.Uint64
	budget atomic.Int64 // of the running call, ns

	// Owned by the watchdog goroutine.
	seen  uint64        // calls when last seen running
	since time.Duration // when seen first
}

func newWatchdog(budgets ...time.Duration) *watchdog {
	w := &watchdog{epoch: time.Now(), guards: map[*guard]struct{}{}, scans: map[*scan]struct{}{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	w.base = maxTick
	for _, b := range budgets {
		w.base = min(w.base, tickFor(b))
	}
	w.tick = w.base
	go w.run()
	return w
}

func tickFor(budget time.Duration) time.Duration {
	return min(max(budget/4, minTick), maxTick)
}

func (w *watchdog) close() {
	close(w.stop)
	<-w.done
}

func (w *watchdog) now() time.Duration { return time.Since(w.epoch) }

func (w *watchdog) run() {
	defer close(w.done)
	w.mu.Lock()
	t := time.NewTimer(w.tick)
	w.mu.Unlock()
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.wake:
		case <-t.C:
			w.check()
		}
		w.mu.Lock()
		t.Reset(w.tick)
		w.mu.Unlock()
	}
}

// check abandons the calls past their budget. Calls are told apart by their
// guard's count, so a call is abandoned only after the watchdog has seen it
// running for its whole budget: a late tick delays abandonment, never
// hastens it.
func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	for g := range w.guards {
		c := g.calls.Load()
		if c&callRunning == 0 || c&callKilled != 0 {
			continue
		}
		if c != g.seen {
			g.seen, g.since = c, now
			continue
		}
		budget := time.Duration(g.budget.Load())
		if now-g.since >= budget && g.calls.CompareAndSwap(c, c|callKilled) {
			g.inst.Interrupt(BudgetError(budget))
		}
	}
	for s := range w.scans {
		s.fn(now)
	}
}

func (w *watchdog) add(g *guard) {
	w.mu.Lock()
	w.guards[g] = struct{}{}
	w.mu.Unlock()
}

func (w *watchdog) remove(g *guard) {
	w.mu.Lock()
	delete(w.guards, g)
	w.mu.Unlock()
}

func (w *watchdog) watch(period time.Duration, fn func(now time.Duration)) (stop func()) {
	s := &scan{period: period, fn: fn}
	w.mu.Lock()
	w.scans[s] = struct{}{}
	w.retickLocked()
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.scans, s)
		w.retickLocked()
		w.mu.Unlock()
	}
}

func (w *watchdog) retickLocked() {
	t := w.base
	for s := range w.scans {
		t = min(t, tickFor(s.period))
	}
	if t < w.tick {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	w.tick = t
}
