package balancer

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/wproxy/wproxy/core/health"
	"github.com/wproxy/wproxy/hostabi/lbhost"
)

// HealthOptions decide who among a pool's members is balanced over.
type HealthOptions struct {
	// Rules are the thresholds of active and passive checks.
	Rules health.Rules
	// PanicThreshold: when fewer than this share of members (0 to 1) are
	// eligible, the pool balances over all of them. Default 0.5.
	PanicThreshold float64
	// DegradedWeight is the share (0 to 1) of its weight a degraded backend
	// keeps. Default 0.25.
	DegradedWeight float64
	// MaxEjectedShare bounds the members passive checks may eject at once
	// (0 to 1). Default 0.5.
	MaxEjectedShare float64
	// Ignore5xx keeps 5xx answers from counting as passive failures.
	Ignore5xx bool
}

func (o HealthOptions) withDefaults() HealthOptions {
	if o.PanicThreshold == 0 {
		o.PanicThreshold = 0.5
	}
	if o.DegradedWeight == 0 {
		o.DegradedWeight = 0.25
	}
	if o.MaxEjectedShare == 0 {
		o.MaxEjectedShare = 0.5
	}
	return o
}

// InPanic reports whether the pool is in panic mode.
func (p *Pool) InPanic() bool { return p.panicking.Load() }

// Refresh recomputes who is balanced over from the members' health and, when
// it changed, gives the module the new set. Safe to call at any time.
func (p *Pool) Refresh() {
	p.hmu.Lock()
	defer p.hmu.Unlock()
	p.refreshLocked(time.Now())
}

func (p *Pool) refreshLocked(now time.Time) {
	if p.closed {
		return
	}
	var (
		eligible []*Backend
		weights  []uint32
	)
	for _, b := range p.members {
		b.health.Readmit(now)
		if !b.health.Eligible(now) {
			continue
		}
		w := b.Weight
		if b.health.State() == health.Degraded {
			w = max(uint32(float64(w)*p.hopts.DegradedWeight), 1)
		}
		eligible = append(eligible, b)
		weights = append(weights, w)
	}
	panic := len(p.members) > 0 && float64(len(eligible)) < p.hopts.PanicThreshold*float64(len(p.members))
	if panic {
		// The check itself is presumed broken: balance over everyone.
		eligible, weights = p.members, ownWeights(p.members)
	}
	if was := p.panicking.Swap(panic); was != panic {
		if panic {
			p.logger.Error("panic mode: too few backends look healthy; the health check is presumed broken and every backend gets traffic",
				"eligible", len(eligible), "members", len(p.members), "threshold", p.hopts.PanicThreshold)
		} else {
			p.logger.Warn("panic mode over: enough backends are healthy again", "members", len(p.members))
		}
	}
	cur := p.lb.Set()
	if slices.Equal(cur.Items, eligible) && slices.Equal(weights, p.lastWeights) {
		return
	}
	set, err := p.endpointSet(cur.Version+1, eligible, weights)
	if err == nil {
		err = p.lb.SetEndpoints(set)
	}
	if err != nil {
		p.logger.Error("the balancing module refused the new set of backends; the previous one stays", "err", err)
		return
	}
	p.lastWeights = weights
}

func ownWeights(bs []*Backend) []uint32 {
	w := make([]uint32, len(bs))
	for i, b := range bs {
		w[i] = b.Weight
	}
	return w
}

// Report records the outcome of a request proxied to b: ok, or a failure
// (connect error, timeout, broken response, or a 5xx unless ignored).
// Enough failures in a row eject b, unless the pool already has its maximum
// share ejected.
func (p *Pool) Report(b *Backend, ok bool, cause string) {
	now := time.Now()
	if !b.health.RecordPassive(ok, p.hopts.Rules, now) {
		return
	}
	p.hmu.Lock()
	defer p.hmu.Unlock()
	if p.closed || b.health.Ejected(now) {
		return
	}
	ejected := 0
	for _, m := range p.members {
		if m.health.Ejected(now) {
			ejected++
		}
	}
	if float64(ejected+1) > p.hopts.MaxEjectedShare*float64(len(p.members)) {
		p.logger.Warn("backend keeps failing but the pool has its maximum share ejected", "backend", b.Address, "ejected", ejected, "cause", cause)
		return
	}
	until := b.health.Eject(cause, p.hopts.Rules, now)
	p.logger.Warn("backend ejected after consecutive failures", "backend", b.Address, "until", until.Format(time.RFC3339), "cause", cause)
	var t *time.Timer
	t = time.AfterFunc(until.Sub(now)+time.Millisecond, func() {
		p.hmu.Lock()
		delete(p.timers, t)
		p.refreshLocked(time.Now())
		p.hmu.Unlock()
	})
	p.timers[t] = struct{}{}
	p.refreshLocked(now)
}

// Count5xx reports whether 5xx answers count as passive failures.
func (p *Pool) Count5xx() bool { return !p.hopts.Ignore5xx }

// PickOther chooses a backend other than not for a request being retried:
// the module picks again and, if it insists on not, the next backend of the
// current set after it. It counts the request like Pick.
func (p *Pool) PickOther(r *http.Request, now time.Time, not *Backend) (*Backend, error) {
	set := p.lb.Set().Items
	if len(set) < 2 {
		return nil, ErrNoBackend
	}
	var flags uint32
	seq := p.seq.Add(1) - 1
	b, counted, err := p.lb.Pick(0, seq, rand.Uint64(), flags, (*requestAttrs)(r), lbhost.ClockAt(now))
	if err != nil || b == not {
		if counted {
			b.Release()
		}
		i := slices.Index(set, not)
		b, counted = set[(i+1)%len(set)], false
	}
	return p.count(b, counted), nil
}
