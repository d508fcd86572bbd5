// Package swrr is smooth weighted round robin, the algorithm of nginx's
// upstream module: every endpoint's current weight grows by its weight, the
// largest is chosen and lowered by the total. Weights 5, 1, 1 give
// a a b a c a a, spreading each endpoint's turns evenly.
//
// The schedule is computed once per endpoint set, one full period long, and a
// pick is the entry at the request's sequence number modulo the period. The
// host numbers a pool's picks, so the rotation is exact however many module
// instances serve the pool concurrently.
package swrr

import (
	"errors"

	"github.com/wproxy/wproxy/sdk/go/lb"
)

// MaxPeriod bounds the schedule's length. Weights whose reduced sum exceeds it
// are scaled down proportionally (each stays at least 1), which keeps the
// shares within 1/MaxPeriod·N of exact.
const MaxPeriod = 1 << 18

// Policy is the round robin balancing policy. Safe for one goroutine at a time.
type Policy struct {
	schedule []uint32
}

var _ lb.Policy = (*Policy)(nil)

// New builds a Policy; it takes no configuration.
func New(config []byte) (lb.Policy, error) {
	if !lb.IsEmptyConfig(config) {
		return nil, errors.New("round_robin takes no policy_config, got " + string(config))
	}
	return &Policy{}, nil
}

// SetEndpoints computes the schedule of one period for eps' weights.
func (p *Policy) SetEndpoints(_ uint64, eps []lb.Endpoint) error {
	p.schedule = Schedule(weights(eps), p.schedule[:0])
	return nil
}

// Pick returns the endpoint at the request's place in the schedule.
func (p *Policy) Pick(req lb.Request) int {
	n := uint64(len(p.schedule))
	if n == 0 {
		return lb.NoEndpoint
	}
	return int(p.schedule[req.Seq%n])
}

func weights(eps []lb.Endpoint) []uint64 {
	w := make([]uint64, len(eps))
	for i, ep := range eps {
		w[i] = max(uint64(ep.Weight), 1)
	}
	return w
}

// Schedule appends to dst one period of smooth weighted round robin over the
// given weights (each at least 1) and returns it.
func Schedule(w []uint64, dst []uint32) []uint32 {
	if len(w) == 0 {
		return dst
	}
	g := w[0]
	for _, x := range w[1:] {
		g = gcd(g, x)
	}
	var total uint64
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > MaxPeriod {
		var t uint64
		for i := range w {
			w[i] = max(w[i]*MaxPeriod/total, 1)
			t += w[i]
		}
		total = t
	}
	cur := make([]int64, len(w))
	for range total {
		best := 0
		for i := range w {
			cur[i] += int64(w[i])
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(total)
		dst = append(dst, uint32(best))
	}
	return dst
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
