// Package health keeps each backend's health: the verdicts of active probes
// with rise and fall thresholds, ejections by passive checks on real
// traffic, and the backend's observed availability over a sliding window.
// The pool (core/balancer) decides from these who receives requests, and
// enters panic mode when too few would; the Prober (prober.go) runs the
// active checks.
//
// A Status is safe for concurrent use: the proxy records outcomes on every
// request with a few atomic operations.
package health

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// State is a backend's health as active checks see it.
type State uint32

// States.
const (
	Up       State = iota // healthy, or never probed
	Degraded              // serving, at reduced weight
	Down                  // not sent requests
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Degraded:
		return "degraded"
	}
	return "down"
}

// Rules are the thresholds of a pool's checks.
type Rules struct {
	Rise, Fall          int           // consecutive probe verdicts to come up or go down
	ConsecutiveFailures int           // passive failures in a row that eject; 0: no passive checks
	BaseEjection        time.Duration // first ejection; doubles on each repeat
	MaxEjection         time.Duration // cap of an ejection
}

// Status is one backend's health.
type Status struct {
	state        atomic.Uint32 // State from active checks
	failures     atomic.Int32  // passive failures in a row
	ejectedUntil atomic.Int64  // Unix ns; 0 when not ejected
	ejectedTotal atomic.Uint64 // ejections since it was created

	mu        sync.Mutex // the fields below, changed by probes and ejections
	streak    int        // consecutive probe verdicts agreeing, + for up, - for down
	ejections int        // ejections in a row, for the exponential time
	lastCause string

	window window
}

// State returns the state active checks gave the backend.
func (s *Status) State() State { return State(s.state.Load()) }

// Ejected reports whether passive checks have the backend out at now.
func (s *Status) Ejected(now time.Time) bool {
	until := s.ejectedUntil.Load()
	return until != 0 && now.UnixNano() < until
}

// EjectedUntil returns when the current ejection ends (zero when none).
func (s *Status) EjectedUntil() time.Time {
	if u := s.ejectedUntil.Load(); u != 0 {
		return time.Unix(0, u)
	}
	return time.Time{}
}

// Eligible reports whether the backend should receive requests at now.
func (s *Status) Eligible(now time.Time) bool {
	return s.State() != Down && !s.Ejected(now)
}

// Cause returns the reason of the last change, for status pages.
func (s *Status) Cause() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastCause
}

// RecordProbe applies one probe verdict with the rise and fall thresholds
// and reports whether the state changed. A probe that finds the backend up
// also ends a passive ejection: re-admission by active checks.
func (s *Status) RecordProbe(v State, cause string, r Rules, now time.Time) (changed bool) {
	s.window.record(v != Down, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	up := v != Down
	switch {
	case up && s.streak >= 0:
		s.streak++
	case up:
		s.streak = 1
	case s.streak <= 0:
		s.streak--
	default:
		s.streak = -1
	}
	old := s.State()
	next := old
	switch {
	case old == Down && up && s.streak >= r.Rise:
		next = v
	case old != Down && !up && -s.streak >= r.Fall:
		next = Down
	case old != Down && up:
		next = v // healthy and degraded follow the latest verdict
	}
	if up && s.ejectedUntil.Load() != 0 && s.streak >= r.Rise {
		s.ejectedUntil.Store(0)
		s.ejections = 0
		changed = true
	}
	if next != old {
		s.state.Store(uint32(next))
		s.lastCause = cause
		return true
	}
	return changed
}

// RecordPassive records the outcome of a proxied request. It reports true
// when the failure makes ConsecutiveFailures in a row: the caller decides
// whether to Eject (it may not, to respect the pool's maximum).
func (s *Status) RecordPassive(ok bool, r Rules, now time.Time) (wantEject bool) {
	s.window.record(ok, now)
	if r.ConsecutiveFailures <= 0 {
		return false
	}
	if ok {
		if s.failures.Load() != 0 {
			s.failures.Store(0)
		}
		return false
	}
	return int(s.failures.Add(1)) >= r.ConsecutiveFailures && !s.Ejected(now)
}

// Eject takes the backend out until now + BaseEjection × 2^(ejections in a
// row), at most MaxEjection, and returns when it comes back.
func (s *Status) Eject(cause string, r Rules, now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := r.BaseEjection << min(s.ejections, 20)
	if d > r.MaxEjection || d <= 0 {
		d = r.MaxEjection
	}
	s.ejections++
	s.ejectedTotal.Add(1)
	s.failures.Store(0)
	until := now.Add(d)
	s.ejectedUntil.Store(until.UnixNano())
	s.lastCause = cause
	return until
}

// Ejections returns how many times the backend was ejected.
func (s *Status) Ejections() uint64 { return s.ejectedTotal.Load() }

// Readmit ends an expired ejection's bookkeeping; the ejection count stays,
// so that a backend that fails again is out for longer. It reports whether
// an ejection ended.
func (s *Status) Readmit(now time.Time) bool {
	until := s.ejectedUntil.Load()
	if until == 0 || now.UnixNano() < until {
		return false
	}
	return s.ejectedUntil.CompareAndSwap(until, 0)
}

// Availability returns the share of successful outcomes (probes and
// proxied requests) over the last window, and whether there were any.
func (s *Status) Availability(now time.Time) (float64, bool) { return s.window.ratio(now) }

// Window of the availability figure.
const (
	windowSpan    = 5 * time.Minute
	windowBuckets = 30
	bucketSpan    = windowSpan / windowBuckets
)

// window counts outcomes in buckets of bucketSpan over windowSpan, without
// locks: each bucket holds its epoch (bucket number since 1970) and counts.
type window struct {
	buckets [windowBuckets]bucket
}

type bucket struct {
	epoch atomic.Int64
	ok    atomic.Int64
	total atomic.Int64
}

func (w *window) record(ok bool, now time.Time) {
	e := now.UnixNano() / int64(bucketSpan)
	b := &w.buckets[e%windowBuckets]
	if old := b.epoch.Load(); old != e && b.epoch.CompareAndSwap(old, e) {
		// A new epoch for this bucket: reset it. A concurrent record may be
		// lost at the turn of a bucket, which a ratio does not notice.
		b.ok.Store(0)
		b.total.Store(0)
	}
	if ok {
		b.ok.Add(1)
	}
	b.total.Add(1)
}

func (w *window) ratio(now time.Time) (float64, bool) {
	e := now.UnixNano() / int64(bucketSpan)
	var ok, total int64
	for i := range w.buckets {
		b := &w.buckets[i]
		if e-b.epoch.Load() < windowBuckets {
			ok += b.ok.Load()
			total += b.total.Load()
		}
	}
	if total == 0 {
		return 1, false
	}
	return float64(ok) / float64(total), true
}

// PoolAvailability is the theoretical availability of a pool whose members
// have the given availabilities and fail independently: the probability
// that not all are down, 1 − Π(1 − aᵢ). Two members at 0.99 give 0.9999.
func PoolAvailability(a []float64) float64 {
	if len(a) == 0 {
		return 0
	}
	down := 1.0
	for _, x := range a {
		down *= 1 - math.Min(math.Max(x, 0), 1)
	}
	return 1 - down
}
