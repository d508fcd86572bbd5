package wasmhost

import (
	"sync/atomic"
	"time"
)

// Breaker stops calling a module that keeps failing badly, so that a module
// that loops or traps on every call cannot keep the host busy abandoning
// calls and creating instances. After BreakerStrikes failures in a row it
// opens: callers then skip the module (and answer with their fallback) for
// a back-off of BreakerMinBackoff, doubled at each reopening up to
// BreakerMaxBackoff; when it ends, the next call is tried, and a success
// closes the breaker.
//
// The zero value is a closed breaker. Its methods are safe for concurrent
// use; Open costs one atomic load.
type Breaker struct {
	until   atomic.Int64 // open before this time (caller's ns); 0 never opened
	strikes atomic.Int32
	backoff atomic.Int64
}

// Breaker parameters.
const (
	BreakerStrikes    = 3
	BreakerMinBackoff = time.Second
	BreakerMaxBackoff = time.Minute
)

// Open reports whether calls should be skipped at now (nanoseconds on the
// caller's monotonic clock, which must not be 0).
func (b *Breaker) Open(now int64) bool {
	u := b.until.Load()
	return u != 0 && now < u
}

// Tripped reports whether the breaker has opened since the last success:
// only then need a caller read its clock for Open.
func (b *Breaker) Tripped() bool { return b.until.Load() != 0 }

// Succeeded records a call that went well.
func (b *Breaker) Succeeded() {
	if b.strikes.Load() != 0 || b.until.Load() != 0 {
		b.strikes.Store(0)
		b.backoff.Store(0)
		b.until.Store(0)
	}
}

// Failed records a call that failed badly (it trapped, exited or ran past
// its budget) at now. It returns the back-off when the breaker opens, else 0.
func (b *Breaker) Failed(now int64) time.Duration {
	if b.strikes.Add(1) < BreakerStrikes || b.Open(now) {
		return 0
	}
	d := min(max(2*time.Duration(b.backoff.Load()), BreakerMinBackoff), BreakerMaxBackoff)
	b.backoff.Store(int64(d))
	b.until.Store(now + int64(d))
	return d
}
