// Package leastreq is the least_request balancing policy: power of two
// choices on requests in flight, weighted, as Envoy's least_request.
//
// Each pick draws choice_count candidates at random in proportion to their
// weights (the first two always distinct) and sends the request to the one
// with the fewest requests in flight relative to its weight, (in flight + 1)
// / weight, the first drawn on a tie. With equal weights this is the classic power of two choices
// (Mitzenmacher); unequal weights bias both the draw and the comparison, so a
// backend of weight 2 is expected to carry about twice the requests of one of
// weight 1 at the same latency. In-flight counts are the proxy's own, read
// through the host for the candidates only.
package leastreq

import (
	"errors"

	"github.com/wproxy/wproxy/policies-wasm/internal/flatjson"
	"github.com/wproxy/wproxy/policies-wasm/internal/wrand"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

// Config is the policy_config of least_request.
type Config struct {
	// ChoiceCount is how many candidates a pick compares, 2 to 10.
	// Default 2.
	ChoiceCount int
	// LatencyAware multiplies a candidate's (in flight + 1) by its moving
	// average time to respond (endpoint_latency), so that the cost compared
	// is the expected wait rather than the queue length, as Finagle's and
	// Linkerd's P2C with peak EWMA do. Default false (Envoy's behaviour).
	LatencyAware bool
}

// Policy is least_request. Safe for one goroutine at a time.
type Policy struct {
	cfg Config
	tab wrand.Table
	idx [10]int32    // the pick's candidates
	st  [10]lb.Stats // their figures, read in one host call
}

var _ lb.Policy = (*Policy)(nil)

// New builds the policy from its JSON configuration.
func New(raw []byte) (lb.Policy, error) {
	p := &Policy{cfg: Config{ChoiceCount: 2}}
	if lb.IsEmptyConfig(raw) {
		return p, nil
	}
	o, err := flatjson.Parse(raw)
	if err == nil {
		err = o.Check("choice_count", "latency_aware")
	}
	var n int64
	if err == nil {
		n, err = o.Int("choice_count", 2, 2, 10)
	}
	if v, ok := o["latency_aware"]; err == nil && ok && v.Kind != flatjson.Null {
		if v.Kind != flatjson.Bool {
			err = errors.New(`"latency_aware" must be true or false`)
		}
		p.cfg.LatencyAware = v.Bool
	}
	if err != nil {
		return nil, errors.New("least_request policy_config: " + err.Error())
	}
	p.cfg.ChoiceCount = int(n)
	return p, nil
}

// SetEndpoints keeps the endpoints' weights.
func (p *Policy) SetEndpoints(_ uint64, eps []lb.Endpoint) error {
	p.tab.Reset(func(i int) uint32 { return eps[i].Weight }, len(eps))
	return nil
}

// Pick chooses the least loaded of choice_count weighted random candidates.
func (p *Policy) Pick(r lb.Request) int {
	n := p.tab.Len()
	switch n {
	case 0:
		return lb.NoEndpoint
	case 1:
		return 0
	}
	k := p.cfg.ChoiceCount
	p.idx[0] = int32(p.tab.Draw(wrand.Next(r.Random, 0)))
	// The second candidate differs from the first, so that a slow endpoint
	// is never chosen just because it was drawn twice.
	p.idx[1] = int32(p.tab.DrawExcept(wrand.Next(r.Random, 1), int(p.idx[0])))
	for c := 2; c < k; c++ {
		p.idx[c] = int32(p.tab.Draw(wrand.Next(r.Random, c)))
	}
	if !lb.ReadStats(p.idx[:k], p.st[:k]) {
		return int(p.idx[0])
	}
	best := -1
	var bestLoad, bestWeight uint64
	for c := range k {
		i := int(p.idx[c])
		load := uint64(max(p.st[c].InFlight, 0)) + 1
		if p.cfg.LatencyAware {
			// In microseconds, at least 1: a backend not yet measured
			// competes on its queue alone.
			load *= uint64(max(p.st[c].Latency/1000, 1))
		}
		w := p.tab.Weight(i)
		// load/w < bestLoad/bestWeight, without division.
		if best < 0 || load*bestWeight < bestLoad*w {
			best, bestLoad, bestWeight = i, load, w
		}
	}
	return best
}
