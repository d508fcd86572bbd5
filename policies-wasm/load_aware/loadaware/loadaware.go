// Package loadaware is the load_aware balancing policy: power of two choices
// on a score that combines each backend's own report of its load, sampled
// from a load endpoint and cached, with the proxy's requests in flight.
//
// Every backend exposes GET /load (the path is configurable) answering 200
// with either a number — "0.42" — or a JSON object — {"load":0.42} or
// {"cpu":0.40,"mem":0.31,"inflight":12} — where load, or else the larger of
// cpu and mem, is the backend's load: 0 idle, 1 fully loaded (values above 1
// mean overloaded; at most 100). Anything else is ignored.
//
// Samples are taken through the host's asynchronous fetch, at most once per
// ttl_ms per backend however many requests, cores or module instances there
// are: the host hands the right to take a backend's next sample to one
// caller per ttl (endpoint_load_claim), and keeps the sample where every
// instance of the pool reads it (endpoint_load). A pick never waits for a
// sample. A sample's weight fades linearly to nothing over max_age_ms, so a
// backend whose load endpoint hangs or answers garbage is balanced on the
// proxy's own figures alone.
//
// The score of a candidate is (in flight + 1) / weight × (1 + load_weight ×
// load); the lower of choice_count weighted random candidates wins.
package loadaware

import (
	"errors"
	"strconv"

	"github.com/wproxy/wproxy/policies-wasm/internal/flatjson"
	"github.com/wproxy/wproxy/policies-wasm/internal/wrand"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

// Config is the policy_config of load_aware.
type Config struct {
	Path        string  // load endpoint path; default "/load"
	TTLMS       int64   // sample each backend at most once per ttl_ms; default 1000
	TimeoutMS   int64   // a sample that takes longer is abandoned; default 250
	MaxAgeMS    int64   // a sample's weight fades to 0 over max_age_ms; default 10 × ttl_ms
	LoadWeight  float64 // how much load counts against in-flight requests; default 8
	ChoiceCount int     // candidates per pick, 2 to 10; default 2
}

// ParseConfig decodes a policy_config and applies defaults.
func ParseConfig(raw []byte) (Config, error) {
	c := Config{Path: "/load", TTLMS: 1000, TimeoutMS: 250, LoadWeight: 8, ChoiceCount: 2}
	if lb.IsEmptyConfig(raw) {
		c.MaxAgeMS = 10 * c.TTLMS
		return c, nil
	}
	o, err := flatjson.Parse(raw)
	if err == nil {
		err = o.Check("path", "ttl_ms", "timeout_ms", "max_age_ms", "load_weight", "choice_count")
	}
	var choices int64
	if err == nil {
		c.Path, err = o.String("path", c.Path)
	}
	if err == nil && (len(c.Path) == 0 || c.Path[0] != '/') {
		err = errors.New(`"path" must start with /`)
	}
	if err == nil {
		c.TTLMS, err = o.Int("ttl_ms", c.TTLMS, 10, 3_600_000)
	}
	if err == nil {
		c.TimeoutMS, err = o.Int("timeout_ms", c.TimeoutMS, 1, 30_000)
	}
	if err == nil {
		c.MaxAgeMS, err = o.Int("max_age_ms", 10*c.TTLMS, c.TTLMS, 86_400_000)
	}
	if err == nil {
		c.LoadWeight, err = o.Number("load_weight", c.LoadWeight)
		if err == nil && (c.LoadWeight < 0 || c.LoadWeight > 1000) {
			err = errors.New(`"load_weight" must be from 0 to 1000`)
		}
	}
	if err == nil {
		choices, err = o.Int("choice_count", 2, 2, 10)
		c.ChoiceCount = int(choices)
	}
	if err != nil {
		return Config{}, errors.New("load_aware policy_config: " + err.Error())
	}
	return c, nil
}

// Policy is load_aware. Safe for one goroutine at a time.
type Policy struct {
	cfg     Config
	tab     wrand.Table
	idx     [10]int32    // the pick's candidates
	st      [10]lb.Stats // their figures, read in one host call
	addrs   []string
	version uint64
	pending []pending // samples this instance started
}

type pending struct {
	id      int64
	idx     int
	addr    string
	version uint64
}

var _ lb.Policy = (*Policy)(nil)

// New builds the policy from its JSON configuration.
func New(raw []byte) (lb.Policy, error) {
	cfg, err := ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	return &Policy{cfg: cfg}, nil
}

// SetEndpoints keeps the endpoints' weights and addresses.
func (p *Policy) SetEndpoints(version uint64, eps []lb.Endpoint) error {
	p.tab.Reset(func(i int) uint32 { return eps[i].Weight }, len(eps))
	p.addrs = p.addrs[:0]
	for _, ep := range eps {
		p.addrs = append(p.addrs, ep.Address)
	}
	p.version = version
	return nil
}

// Pick collects finished samples, then chooses the candidate with the lowest
// score, starting a sample of any candidate whose last one is stale.
func (p *Policy) Pick(r lb.Request) int {
	if len(p.pending) > 0 {
		p.collect()
	}
	n := p.tab.Len()
	switch n {
	case 0:
		return lb.NoEndpoint
	case 1:
		p.idx[0] = 0
		if lb.ReadStats(p.idx[:1], p.st[:1]) {
			p.effectiveLoad(0, p.st[0])
		}
		return 0
	}
	k := p.cfg.ChoiceCount
	p.idx[0] = int32(p.tab.Draw(wrand.Next(r.Random, 0)))
	p.idx[1] = int32(p.tab.DrawExcept(wrand.Next(r.Random, 1), int(p.idx[0]))) // two distinct candidates
	for c := 2; c < k; c++ {
		p.idx[c] = int32(p.tab.Draw(wrand.Next(r.Random, c)))
	}
	if !lb.ReadStats(p.idx[:k], p.st[:k]) {
		return int(p.idx[0])
	}
	best, bestScore := -1, 0.0
	for c := range k {
		i := int(p.idx[c])
		load := p.effectiveLoad(i, p.st[c])
		s := (float64(max(p.st[c].InFlight, 0)) + 1) / float64(p.tab.Weight(i)) * (1 + p.cfg.LoadWeight*load)
		if best < 0 || s < bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// effectiveLoad returns endpoint i's sample faded by its age (0 without
// one), and starts a new sample when the last is older than ttl and this
// caller wins the claim.
func (p *Policy) effectiveLoad(i int, st lb.Stats) float64 {
	ttl := p.cfg.TTLMS * 1e6
	if (st.Load < 0 || st.LoadAge >= ttl) && lb.ClaimLoadSample(i, p.cfg.TTLMS) {
		p.start(i)
	}
	if st.Load < 0 {
		return 0
	}
	fade := 1 - float64(st.LoadAge)/(float64(p.cfg.MaxAgeMS)*1e6)
	if fade <= 0 {
		return 0
	}
	return float64(st.Load) / lb.LoadScale * fade
}

func (p *Policy) start(i int) {
	id, err := lb.Fetch(&lb.FetchRequest{Method: "GET", URL: "http://" + p.addrs[i] + p.cfg.Path, TimeoutMS: uint32(p.cfg.TimeoutMS)})
	if err != nil {
		return // the claim lapses after ttl; another caller tries then
	}
	p.pending = append(p.pending, pending{id: id, idx: i, addr: p.addrs[i], version: p.version})
}

// collect records the samples that have arrived.
func (p *Policy) collect() {
	kept := p.pending[:0]
	for _, f := range p.pending {
		res, done, err := lb.FetchDone(f.id)
		if err != nil {
			continue // expired or unknown: drop it
		}
		if !done {
			kept = append(kept, f)
			continue
		}
		if res.Status != 200 {
			continue
		}
		load, ok := ParseLoad(res.Body)
		if !ok {
			continue
		}
		// The set may have changed since: find the endpoint again.
		idx := f.idx
		if f.version != p.version && (idx >= len(p.addrs) || p.addrs[idx] != f.addr) {
			idx = -1
			for j, a := range p.addrs {
				if a == f.addr {
					idx = j
					break
				}
			}
		}
		if idx >= 0 {
			lb.SetEndpointLoad(idx, int64(load*lb.LoadScale))
		}
	}
	p.pending = kept
}

// ParseLoad reads a load endpoint's answer: a number, or a JSON object with
// "load", or else the larger of "cpu" and "mem". It reports false for
// anything else, and for loads outside 0 to 100.
func ParseLoad(body []byte) (float64, bool) {
	b := trim(body)
	if len(b) == 0 {
		return 0, false
	}
	var load float64
	if b[0] == '{' {
		o, err := flatjson.Parse(b)
		if err != nil {
			return 0, false
		}
		v, ok := o["load"]
		switch {
		case ok && v.Kind == flatjson.Number:
			load = v.Num
		case ok:
			return 0, false
		default:
			cpu, cok := o["cpu"]
			mem, mok := o["mem"]
			if (!cok || cpu.Kind != flatjson.Number) && (!mok || mem.Kind != flatjson.Number) {
				return 0, false
			}
			if cok && cpu.Kind == flatjson.Number {
				load = cpu.Num
			}
			if mok && mem.Kind == flatjson.Number && mem.Num > load {
				load = mem.Num
			}
		}
	} else {
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return 0, false
		}
		load = f
	}
	if !(load >= 0 && load <= 100) { // also refuses NaN
		return 0, false
	}
	return load, true
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
