// Package maglevpolicy is the maglev balancing policy: consistent hashing
// with Maglev's lookup table (package maglevtable; Eisenbud et al., NSDI
// 2016), optionally with bounded loads (Mirrokni, Thorup and Zadimoghaddam,
// "Consistent Hashing with Bounded Loads", SODA 2018).
//
// The key is the pool's hash_key: a request whose key is present goes to the
// table entry at its hash, so the same key reaches the same backend on every
// request, after a restart, and on every wproxy instance with the same
// backends (the table depends only on the backends' addresses and weights).
// A request without the key goes to the fallback: "random" (weighted) or
// "round_robin" (the table's entries in turn, so weighted too).
//
// With bounded_loads, no backend takes more than ⌈c · (in flight + 1) ·
// weight / total weight⌉ of the pool's requests in flight, c being
// balance_factor: a key whose backend is full walks on, in table order from
// its entry, to the next backend with room. The bound is enforced with the
// host's atomic endpoint_acquire, so it holds under any concurrency.
package maglevpolicy

import (
	"errors"
	"math"
	"strconv"

	"github.com/wproxy/wproxy/policies-wasm/internal/flatjson"
	"github.com/wproxy/wproxy/policies-wasm/internal/wrand"
	"github.com/wproxy/wproxy/policies-wasm/maglev/maglevtable"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

// Config is the policy_config of maglev.
type Config struct {
	TableSize     uint64  // a prime, more than the number of backends; default 65537
	Fallback      string  // "random" or "round_robin"; default "random"
	BoundedLoads  bool    // default false
	BalanceFactor float64 // c of bounded loads, at least 1; default 1.25
}

// ParseConfig decodes a policy_config and applies defaults.
func ParseConfig(raw []byte) (Config, error) {
	c := Config{TableSize: 65537, Fallback: "random", BalanceFactor: 1.25}
	if lb.IsEmptyConfig(raw) {
		return c, nil
	}
	o, err := flatjson.Parse(raw)
	if err == nil {
		err = o.Check("table_size", "fallback", "bounded_loads", "balance_factor")
	}
	var size int64
	if err == nil {
		size, err = o.Int("table_size", int64(c.TableSize), 2, maglevtable.MaxSize)
		c.TableSize = uint64(size)
		if err == nil && !maglevtable.IsPrime(c.TableSize) {
			err = errors.New(`"table_size" must be a prime, such as 65537, 131071, 655373 or 1000003; ` + strconv.FormatUint(c.TableSize, 10) + " is not")
		}
	}
	if err == nil {
		c.Fallback, err = o.String("fallback", c.Fallback)
		if err == nil && c.Fallback != "random" && c.Fallback != "round_robin" {
			err = errors.New(`"fallback" must be "random" or "round_robin"`)
		}
	}
	if err == nil {
		if v, ok := o["bounded_loads"]; ok && v.Kind != flatjson.Null {
			if v.Kind != flatjson.Bool {
				err = errors.New(`"bounded_loads" must be true or false`)
			}
			c.BoundedLoads = v.Bool
		}
	}
	if err == nil {
		c.BalanceFactor, err = o.Number("balance_factor", c.BalanceFactor)
		if err == nil && !(c.BalanceFactor >= 1 && c.BalanceFactor <= 100) {
			err = errors.New(`"balance_factor" must be from 1 to 100`)
		}
	}
	if err != nil {
		return Config{}, errors.New("maglev policy_config: " + err.Error())
	}
	return c, nil
}

// Policy is maglev. Safe for one goroutine at a time.
type Policy struct {
	cfg      Config
	builder  maglevtable.Builder
	table    []int32
	backends []maglevtable.Backend
	weights  []uint64
	total    uint64
	rand     wrand.Table
	walker   maglevtable.Walker
	capacity func(i int32) bool // the walker's test, kept to avoid a closure per pick
	limit    float64            // c · (in flight + 1) / total weight, per pick
}

var _ lb.Policy = (*Policy)(nil)

// New builds the policy from its JSON configuration.
func New(raw []byte) (lb.Policy, error) {
	cfg, err := ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	p := &Policy{cfg: cfg}
	p.capacity = func(i int32) bool {
		return lb.AcquireEndpoint(int(i), int64(math.Ceil(p.limit*float64(p.weights[i]))))
	}
	return p, nil
}

// SetEndpoints builds the lookup table for eps.
func (p *Policy) SetEndpoints(_ uint64, eps []lb.Endpoint) error {
	if uint64(len(eps)) >= p.cfg.TableSize {
		return errors.New("maglev: " + strconv.Itoa(len(eps)) + " endpoints need a table_size above " + strconv.FormatUint(p.cfg.TableSize, 10))
	}
	p.backends = p.backends[:0]
	p.weights = p.weights[:0]
	p.total = 0
	for _, ep := range eps {
		w := max(ep.Weight, 1)
		p.backends = append(p.backends, maglevtable.Backend{Name: ep.Address, Weight: w})
		p.weights = append(p.weights, uint64(w))
		p.total += uint64(w)
	}
	table, err := p.builder.Build(p.backends, p.cfg.TableSize, p.table)
	if err != nil {
		return errors.New("maglev: " + err.Error())
	}
	p.table = table
	p.rand.Reset(func(i int) uint32 { return eps[i].Weight }, len(eps))
	return nil
}

// Pick maps the request's key to its backend, or uses the fallback.
func (p *Policy) Pick(r lb.Request) int {
	n := len(p.backends)
	if n == 0 {
		return lb.NoEndpoint
	}
	var hash uint64
	switch {
	case r.HashPresent:
		hash = r.Hash
	case p.cfg.Fallback == "round_robin":
		hash = r.Seq
	default:
		return p.rand.Draw(r.Random)
	}
	if !p.cfg.BoundedLoads || n == 1 {
		return int(maglevtable.Lookup(p.table, hash))
	}
	p.limit = p.cfg.BalanceFactor * float64(lb.PoolInFlight()+1) / float64(p.total)
	return int(p.walker.Walk(p.table, n, hash, p.capacity))
}
