// Package balancer holds a pool's backends and picks one for each request
// through the pool's Wasm balancing module.
//
// A Pool is safe for concurrent use. Its backends are an immutable set pushed
// to the module when it changes; a pick computes the request's scalars (the
// hash of the configured key, the pool's sequence number, a random number),
// makes one call into the module and accounts the request to the chosen
// backend until its Done. When the module fails, a native round robin answers
// and the failure is counted and logged.
package balancer

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/health"
	"github.com/wproxy/wproxy/core/upstream"
	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/lbhost"
	"github.com/wproxy/wproxy/hostabi/wasmhost"
	"github.com/wproxy/wproxy/hostabi/wire"
)

// ErrModuleFailed is returned by Pick when the balancing module failed and
// the pool's fallback is none.
var ErrModuleFailed = errors.New("the balancing module failed and the pool has no fallback")

// ErrNoBackend is returned by Pick when the pool has no backend for the
// request.
var ErrNoBackend = errors.New("no backend available")

// Backend is one server of a pool, with its connection pool and live figures.
type Backend struct {
	Address string
	Weight  uint32
	Zone    string
	Meta    map[string]string
	// Conns pools the upstream connections to this backend.
	Conns *upstream.ConnPool

	inflight atomic.Int64
	requests atomic.Uint64
	health   health.Status
	latency  atomic.Int64 // EWMA of time to response header, ns
	latAt    atomic.Int64 // when it was last updated, lbhost.Clock
	load     atomic.Int64 // last load sample, millionths
	loadAt   atomic.Int64 // when, lbhost.Clock; 0 before the first
	claimAt  atomic.Int64 // last load-sample claim, lbhost.Clock; 0 never
}

var _ lbhost.Endpoint = (*Backend)(nil)

// HealthStatus returns the backend's health.
func (b *Backend) HealthStatus() *health.Status { return &b.health }

// InFlight returns the requests picked for b and not yet done.
func (b *Backend) InFlight() int64 { return b.inflight.Load() }

// ObserveLatency folds the time a response header took into the backend's
// moving average (weight 1/8 for the new sample).
func (b *Backend) ObserveLatency(d time.Duration) {
	for {
		old := b.latency.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/8
		}
		if b.latency.CompareAndSwap(old, next) {
			b.latAt.Store(lbhost.Clock())
			return
		}
	}
}

// LatencyHalfLife is how fast a backend's latency average fades when no
// response comes to refresh it: a backend shunned for being slow is tried
// again once its figure has faded.
const LatencyHalfLife = 10 * time.Second

// LatencyEWMA returns the moving average of the time to a response header,
// in nanoseconds, halved for every LatencyHalfLife since the last response;
// 0 before the first response.
func (b *Backend) LatencyEWMA() int64 { return b.latencyAt(lbhost.Clock()) }

func (b *Backend) latencyAt(now int64) int64 {
	v := b.latency.Load()
	if v == 0 {
		return 0
	}
	age := now - b.latAt.Load()
	if age < int64(time.Second) {
		return v
	}
	return int64(float64(v) * math.Exp2(-float64(age)/float64(LatencyHalfLife)))
}

// Figures returns the backend's live figures at now, for endpoint_stats.
func (b *Backend) Figures(now int64) (inflight, latency, load, loadAge int64) {
	load, loadAge = -1, -1
	if at := b.loadAt.Load(); at != 0 {
		load, loadAge = b.load.Load(), max(now-at, 0)
	}
	return b.inflight.Load(), b.latencyAt(now), load, loadAge
}

// Load returns the last load sample a module recorded (millionths) and when.
func (b *Backend) Load() (load, at int64, ok bool) {
	at = b.loadAt.Load()
	return b.load.Load(), at, at != 0
}

// SetLoad records a load sample.
func (b *Backend) SetLoad(load, now int64) {
	b.load.Store(load)
	b.loadAt.Store(now)
}

// ClaimLoadSample returns true to one caller per ttl: the one that should
// sample the backend's load next.
func (b *Backend) ClaimLoadSample(now, ttl int64) bool {
	last := b.claimAt.Load()
	return (last == 0 || now-last >= ttl) && b.claimAt.CompareAndSwap(last, now)
}

// Addr returns host:port.
func (b *Backend) Addr() string { return b.Address }

// TryAcquire counts one more request in flight if fewer than limit are.
func (b *Backend) TryAcquire(limit int64) bool {
	for {
		cur := b.inflight.Load()
		if cur >= limit {
			return false
		}
		if b.inflight.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

// Release undoes a TryAcquire.
func (b *Backend) Release() { b.inflight.Add(-1) }

// Requests returns the requests picked for b since start.
func (b *Backend) Requests() uint64 { return b.requests.Load() }

// Pool is a named set of backends balanced by a module.
type Pool struct {
	Name        string
	lb          *lbhost.Balancer[*Backend]
	members     []*Backend // every configured backend, eligible or not
	hopts       HealthOptions
	hmu         sync.Mutex  // serializes Refresh and ejections
	panicking   atomic.Bool // panic mode: balancing over every member
	timers      map[*time.Timer]struct{}
	closed      bool
	lastWeights []uint32 // the weights of the current set
	key         HashKey
	fetchAllow  map[string]bool
	seq         atomic.Uint64
	inflight    atomic.Int64
	logger      *slog.Logger
	fallback    atomic.Uint64
	// fallbackKind is Options.Fallback, round_robin when empty.
	fallbackKind string
	lastLog      atomic.Int64
	observePick  func(time.Duration)
}

// Options configure a Pool.
type Options struct {
	// HashKey is what a request's hash is computed from.
	HashKey []config.HashSource
	// MaxInstances bounds the module instances that run at once; default
	// GOMAXPROCS.
	MaxInstances int
	// PickBudget bounds a pick (lbhost.DefaultPickBudget when zero): a pick
	// still running then is abandoned and the fallback answers.
	PickBudget time.Duration
	// Fallback names what answers when the module fails: round_robin (also
	// when empty), random, hash or none (see config.Pool.Fallback).
	Fallback string
	// FetchAllow lists host:port destinations the module may fetch from,
	// beyond the pool's own backends.
	FetchAllow []string
	// Health configures how health decides who is balanced over.
	Health HealthOptions
	Logger *slog.Logger
	// ObservePick, when set, is given the duration of one pick in
	// PickSampleEvery: timing every pick would cost two clock readings
	// each.
	ObservePick func(time.Duration)
}

// NewPool starts the pool's module with policyConfig (JSON) and gives it the
// backends.
func NewPool(name string, mod *wasmhost.Module, policyConfig []byte, backends []*Backend, opts Options) (*Pool, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Pool{Name: name, key: HashKey(opts.HashKey), logger: opts.Logger.With("pool", name), fetchAllow: map[string]bool{},
		members: backends, hopts: opts.Health.withDefaults(), timers: map[*time.Timer]struct{}{}, lastWeights: ownWeights(backends),
		observePick: opts.ObservePick, fallbackKind: opts.Fallback}
	if p.fallbackKind == "" {
		p.fallbackKind = "round_robin"
	}
	for _, a := range opts.FetchAllow {
		p.fetchAllow[a] = true
	}
	set, err := p.endpointSet(1, backends, nil)
	if err != nil {
		return nil, err
	}
	lb, err := lbhost.New(mod, policyConfig, set, lbhost.Options{
		Name: name, MaxInstances: opts.MaxInstances, Logger: opts.Logger, PickBudget: opts.PickBudget,
		PoolInFlight: p.inflight.Load,
		FetchAllowed: p.fetchAllowed,
	})
	if err != nil {
		return nil, err
	}
	p.lb = lb
	return p, nil
}

// fetchAllowed lets a module fetch from the pool's backends and the
// configured destinations.
func (p *Pool) fetchAllowed(hostport string) bool {
	if p.fetchAllow[hostport] {
		return true
	}
	for _, b := range p.lb.Set().Items {
		if b.Address == hostport {
			return true
		}
	}
	return false
}

// endpointSet encodes backends; weights, when not nil, replace theirs.
func (p *Pool) endpointSet(version uint64, backends []*Backend, weights []uint32) (*lbhost.Set[*Backend], error) {
	eps := make([]wire.Endpoint, len(backends))
	for i, b := range backends {
		w := b.Weight
		if weights != nil {
			w = weights[i]
		}
		eps[i] = wire.Endpoint{Address: b.Address, Weight: w, Zone: b.Zone, Meta: b.Meta}
	}
	return lbhost.NewSet(version, backends, eps)
}

// Backends returns the backends currently balanced over: the eligible ones,
// or every member in panic mode. The slice must not be modified.
func (p *Pool) Backends() []*Backend { return p.lb.Set().Items }

// Members returns every configured backend, eligible or not. The slice must
// not be modified.
func (p *Pool) Members() []*Backend {
	p.hmu.Lock()
	defer p.hmu.Unlock()
	return p.members
}

// SetMembers replaces the pool's backends (new ones start healthy) and
// gives the module the eligible ones before its next pick.
func (p *Pool) SetMembers(backends []*Backend) {
	p.hmu.Lock()
	defer p.hmu.Unlock()
	p.members = backends
	p.refreshLocked(time.Now())
}

// Pick chooses a backend for r and counts the request in its in-flight
// figure and the pool's; the caller calls Done when the request ends. now is when the
// request started: the policy sees figures as of then.
func (p *Pool) Pick(r *http.Request, now time.Time) (*Backend, error) {
	var flags uint32
	hash, ok := p.key.Hash(r)
	if ok {
		flags |= hostabi.PickHashPresent
	}
	seq := p.seq.Add(1) - 1
	var t0 time.Time
	sample := seq%PickSampleEvery == 0 && p.observePick != nil
	if sample {
		t0 = time.Now()
	}
	b, counted, err := p.lb.Pick(hash, seq, rand.Uint64(), flags, (*requestAttrs)(r), lbhost.ClockAt(now))
	if sample {
		p.observePick(time.Since(t0))
	}
	if err != nil {
		if errors.Is(err, lbhost.ErrNoEndpoint) {
			return nil, ErrNoBackend
		}
		b = p.fallbackPick(seq, hash, ok, err)
		if b == nil {
			if p.fallbackKind == "none" {
				return nil, ErrModuleFailed
			}
			return nil, ErrNoBackend
		}
	}
	return p.count(b, counted), nil
}

// count counts a request (or connection) sent to b in its in-flight figure
// (unless the module already did: counted) and the pool's, and in b's
// requests.
func (p *Pool) count(b *Backend, counted bool) *Backend {
	if !counted {
		b.inflight.Add(1)
	}
	p.inflight.Add(1)
	b.requests.Add(1)
	return b
}

// PickSampleEvery is how often a pick is timed for ObservePick.
const PickSampleEvery = 64

// Picks returns how many picks the pool made (module calls).
func (p *Pool) Picks() uint64 { return p.seq.Load() }

// Done ends the accounting of one request this pool picked for b.
func (p *Pool) Done(b *Backend) {
	b.inflight.Add(-1)
	p.inflight.Add(-1)
}

// InFlight returns the pool's requests in flight.
func (p *Pool) InFlight() int64 { return p.inflight.Load() }

// fallbackPick answers when the module failed, by the pool's fallback, over
// the set and ignoring weights: round robin by the request's sequence
// number, at random, or by the request's hash (round robin without one);
// none answers nothing. The failure is logged at most once a second.
func (p *Pool) fallbackPick(seq, hash uint64, hashed bool, cause error) *Backend {
	if p.fallbackKind == "none" {
		p.logFailure(cause, "balancing module failed; the pool has no fallback: 503")
		return nil
	}
	p.fallback.Add(1)
	p.logFailure(cause, "balancing module failed; the fallback "+p.fallbackKind+" answers")
	items := p.lb.Set().Items
	if len(items) == 0 {
		return nil
	}
	n := uint64(len(items))
	switch {
	case p.fallbackKind == "random":
		return items[rand.Uint64N(n)]
	case p.fallbackKind == "hash" && hashed:
		return items[hash%n]
	}
	return items[seq%n]
}

// logFailure logs a module failure at most once a second.
func (p *Pool) logFailure(cause error, msg string) {
	now := time.Now().UnixNano()
	if last := p.lastLog.Load(); now-last > int64(time.Second) && p.lastLog.CompareAndSwap(last, now) {
		p.logger.Error(msg, "err", cause, "fallbacks", p.fallback.Load())
	}
}

// Stats are a pool's counters.
type Stats struct {
	Module    lbhost.Stats
	Fallbacks uint64 // picks answered by the fallback after a module failure
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats { return Stats{Module: p.lb.Stats(), Fallbacks: p.fallback.Load()} }

// Module returns the pool's balancing module.
func (p *Pool) Module() *wasmhost.Module { return p.lb.Module() }

// Close stops the pool's module instances and timers. The backends'
// connections are their owner's to close: a reload may hand them to the
// next pool.
func (p *Pool) Close() {
	p.hmu.Lock()
	p.closed = true
	for t := range p.timers {
		t.Stop()
	}
	p.hmu.Unlock()
	p.lb.Close()
}

func (p *Pool) String() string { return fmt.Sprintf("pool %q", p.Name) }

// ConnAttrs are the attributes a policy sees for a TCP connection: only its
// client_ip.
type ConnAttrs struct{ ClientIP string }

// Attr returns client_ip; a connection has no other attribute.
func (a ConnAttrs) Attr(name string) (string, bool) {
	if name == "client_ip" && a.ClientIP != "" {
		return a.ClientIP, true
	}
	return "", false
}

// PickConn chooses a backend for a TCP connection whose key hashes to hash
// (hashed false: no key, the policy balances without one), other than not
// when not is set (a retry after a failed connect: the module picks again
// and, if it insists, the next backend of the set after it). It counts the
// connection like Pick; the caller calls Done when it closes.
func (p *Pool) PickConn(hash uint64, hashed bool, attrs ConnAttrs, not *Backend, now time.Time) (*Backend, error) {
	var flags uint32
	if hashed {
		flags |= hostabi.PickHashPresent
	}
	seq := p.seq.Add(1) - 1
	b, counted, err := p.lb.Pick(hash, seq, rand.Uint64(), flags, attrs, lbhost.ClockAt(now))
	if err != nil {
		if errors.Is(err, lbhost.ErrNoEndpoint) {
			return nil, ErrNoBackend
		}
		b, counted = p.fallbackPick(seq, hash, hashed, err), false
		if b == nil {
			if p.fallbackKind == "none" {
				return nil, ErrModuleFailed
			}
			return nil, ErrNoBackend
		}
	}
	if not != nil && b == not {
		if counted {
			b.Release()
		}
		set := p.lb.Set().Items
		if len(set) < 2 {
			return nil, ErrNoBackend
		}
		b, counted = set[(slices.Index(set, not)+1)%len(set)], false
	}
	return p.count(b, counted), nil
}
