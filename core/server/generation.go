package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"sync"
	"time"

	"github.com/wproxy/wproxy/core/balancer"
	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/discovery"
	"github.com/wproxy/wproxy/core/health"
	"github.com/wproxy/wproxy/core/metrics"
	"github.com/wproxy/wproxy/core/proxy"
	"github.com/wproxy/wproxy/core/upstream"
	"github.com/wproxy/wproxy/hostabi/healthhost"
	"github.com/wproxy/wproxy/hostabi/lbhost"
)

// generation is everything one configuration builds: its pools with their
// modules, health checks and backends, and a table per listener. A reload
// builds the next generation beside the current one, reusing what did not
// change, and swaps it in whole.
type generation struct {
	cfg   *config.Config
	pools map[string]*poolState
}

// poolState is a pool and what belongs to it.
type poolState struct {
	cfg        *config.Pool
	digest     [32]byte // the policy module's bytes
	evalDigest [32]byte // the evaluator's, when there are active checks
	evalSource string   // the evaluator's name or file
	connect    time.Duration
	pool       *balancer.Pool
	h2c        *proxy.H2C // the backends' HTTP/2 transports (upstream_protocol h2c)
	prober     *health.Prober
	eval       *healthhost.Evaluator
	disc       *discovery.Manager // nil without discovery sources
	onApply    func()             // after discovery changed the members
	newBackend func(config.Backend) *balancer.Backend
	applyMu    sync.Mutex
}

// pools returns the generation's pools by name.
func (g *generation) poolMap() map[string]*balancer.Pool {
	m := make(map[string]*balancer.Pool, len(g.pools))
	for n, ps := range g.pools {
		m[n] = ps.pool
	}
	return m
}

// table returns the routes and timeouts of a listener of the generation.
func (g *generation) table(l config.Listener, m *metrics.Metrics) *proxy.Table {
	routes := make([]proxy.Route, len(l.Routes))
	for i, r := range l.Routes {
		routes[i] = proxy.Route{Host: r.Host, PathPrefix: r.PathPrefix, Pool: g.pools[r.Pool].pool, H2C: g.pools[r.Pool].h2c,
			Series: m.Route(l.Name, metrics.RouteLabel(r.Host, r.PathPrefix), r.Pool)}
	}
	return &proxy.Table{
		Router:  proxy.NewRouter(routes),
		NoRoute: m.Series(metrics.SeriesKey{Listener: l.Name}),
		Timeouts: proxy.Timeouts{
			ResponseHeader: g.cfg.Timeouts.ResponseHeader,
			ClientBody:     g.cfg.Timeouts.ClientBody,
		},
	}
}

// backends returns every backend of the generation by address and pool.
func (g *generation) backendSet() map[*balancer.Backend]bool {
	m := map[*balancer.Backend]bool{}
	for _, ps := range g.pools {
		for _, b := range ps.pool.Members() {
			m[b] = true
		}
	}
	return m
}

// buildGeneration builds cfg's generation. A pool whose configuration and
// module bytes are unchanged from old is reused whole (its module
// instances, health and connections carry over); a changed pool is built
// anew but keeps the backends whose definition and connection settings are
// unchanged, with their health and connections. Nothing of old is changed;
// on error, what was built is closed. Errors are config.Errors.
func (s *Server) buildGeneration(ctx context.Context, cfg *config.Config, old *generation) (*generation, error) {
	g := &generation{cfg: cfg, pools: map[string]*poolState{}}
	var errs config.Errors
	for _, name := range cfg.PoolNames() {
		var prev *poolState
		if old != nil {
			prev = old.pools[name]
		}
		ps, err := s.buildPool(ctx, cfg, name, prev)
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) {
				ce = cfg.ErrorAt(err, "pools", name, "policy")
			}
			errs = append(errs, ce)
			continue
		}
		g.pools[name] = ps
	}
	if len(errs) > 0 {
		g.closeExcept(old)
		return nil, errs
	}
	return g, nil
}

func (s *Server) buildPool(ctx context.Context, cfg *config.Config, name string, prev *poolState) (*poolState, error) {
	pc := cfg.Pools[name]
	wasm, err := cfg.ReadModule(name)
	if err != nil {
		return nil, err
	}
	ps := &poolState{cfg: pc, digest: sha256.Sum256(wasm), connect: cfg.Timeouts.Connect}
	var evalWasm []byte
	var evalSource string
	if a := pc.Health.Active; a != nil {
		if evalWasm, evalSource, err = cfg.ReadEvaluator(name); err != nil {
			return nil, err
		}
		ps.evalDigest = sha256.Sum256(evalWasm)
		ps.evalSource = evalSource
	}
	if prev != nil && prev.digest == ps.digest && prev.evalDigest == ps.evalDigest && prev.connect == ps.connect && reflect.DeepEqual(prev.cfg, pc) {
		return prev, nil // unchanged: reuse it whole
	}

	source := pc.Policy
	if path := cfg.ModulePath(pc); path != "" {
		source = path
	}
	mod, err := lbhost.Load(ctx, s.rt, source, wasm)
	if err != nil {
		return nil, err
	}
	carried := map[string]*balancer.Backend{}
	if prev != nil && prev.connect == ps.connect && prev.cfg.MaxIdleConns == pc.MaxIdleConns && prev.cfg.IdleConnTimeout == pc.IdleConnTimeout {
		for _, b := range prev.pool.Members() {
			if was, now := findBackend(prev.cfg, b.Address), findBackend(pc, b.Address); now.Address != "" && reflect.DeepEqual(was, now) {
				carried[b.Address] = b
			}
		}
	}
	ps.newBackend = func(b config.Backend) *balancer.Backend {
		return &balancer.Backend{
			Address: b.Address, Weight: b.Weight, Zone: b.Zone, Meta: b.Meta,
			Conns: upstream.NewConnPool(b.Address, upstream.PoolConfig{
				MaxIdle:        pc.MaxIdleConns,
				IdleTimeout:    pc.IdleConnTimeout,
				ConnectTimeout: cfg.Timeouts.Connect,
			}),
		}
	}
	members := pc.Backends
	if len(pc.Discovery) > 0 {
		disc, err := s.buildDiscovery(ctx, cfg, name)
		if err != nil {
			return nil, err
		}
		ps.disc = disc
		members = disc.Initial(ctx)
	}
	backends := make([]*balancer.Backend, len(members))
	for i, b := range members {
		if c := carried[b.Address]; c != nil {
			backends[i] = c
			continue
		}
		backends[i] = ps.newBackend(b)
	}
	h := pc.Health
	rules := health.Rules{
		Rise: 1, Fall: 1,
		BaseEjection: h.Passive.BaseEjection, MaxEjection: h.Passive.MaxEjection,
	}
	if !h.Passive.Disable {
		rules.ConsecutiveFailures = h.Passive.ConsecutiveFailures
	}
	if h.Active != nil {
		rules.Rise, rules.Fall = h.Active.Rise, h.Active.Fall
	}
	pool, err := balancer.NewPool(name, mod, pc.PolicyConfigJSON(), backends, balancer.Options{
		HashKey: pc.HashSources(), FetchAllow: pc.FetchAllow, Logger: s.logger, PickBudget: cfg.Wasm.PickBudget, Fallback: pc.Fallback,
		ObservePick: s.metrics.CallObserver(metrics.ModuleKey{Pool: name, Module: source, Kind: metrics.KindBalancer}),
		Health: balancer.HealthOptions{
			Rules:           rules,
			PanicThreshold:  float64(h.PanicThreshold) / 100,
			DegradedWeight:  float64(h.DegradedWeight) / 100,
			MaxEjectedShare: float64(h.Passive.MaxEjectedPercent) / 100,
			Ignore5xx:       h.Passive.Ignore5xx,
		},
	})
	if err != nil {
		at := "policy"
		if pc.PolicyConfig != nil {
			at = "policy_config"
		}
		closeNewBackends(backends, carried)
		ps.stopDiscovery()
		return nil, cfg.ErrorAt(err, "pools", name, at)
	}
	ps.pool = pool
	if pc.UpstreamProtocol == config.UpstreamH2C {
		ps.h2c = proxy.NewH2C(cfg.Timeouts.Connect, pc.IdleConnTimeout)
	}
	// Carried-over backends keep their health; a new pool must see it.
	pool.Refresh()
	if a := h.Active; a != nil {
		mod, err := healthhost.Load(ctx, s.rt, evalSource, evalWasm)
		if err != nil {
			pool.Close()
			closeNewBackends(backends, carried)
			ps.stopDiscovery()
			return nil, cfg.ErrorAt(err, "pools", name, "health", "active", "evaluator")
		}
		eval, err := healthhost.New(mod, a.EvaluatorConfigJSON(), s.logger.With("pool", name))
		if err != nil {
			at := "evaluator"
			if a.EvaluatorConfig != nil {
				at = "evaluator_config"
			}
			pool.Close()
			closeNewBackends(backends, carried)
			ps.stopDiscovery()
			return nil, cfg.ErrorAt(err, "pools", name, "health", "active", at)
		}
		ps.eval = eval
		ps.prober = health.NewProber(name, health.ProbeConfig{
			Path: a.Path, Interval: a.Interval, Jitter: float64(a.Jitter) / 100, Timeout: a.Timeout,
			Expected: a.ExpectedStatuses, Headers: a.Headers, BodyBytes: a.BodyBytes,
			Rules: rules, Evaluator: eval,
			ObserveEval: s.metrics.CallObserver(metrics.ModuleKey{Pool: name, Module: evalSource, Kind: metrics.KindHealth}),
		}, func() []health.Target {
			ms := pool.Members()
			ts := make([]health.Target, len(ms))
			for i, m := range ms {
				ts[i] = m
			}
			return ts
		}, pool.Refresh, s.logger)
	}
	return ps, nil
}

func findBackend(pc *config.Pool, addr string) config.Backend {
	for _, b := range pc.Backends {
		if b.Address == addr {
			return b
		}
	}
	return config.Backend{}
}

func closeNewBackends(bs []*balancer.Backend, carried map[string]*balancer.Backend) {
	for _, b := range bs {
		if carried[b.Address] != b {
			b.Conns.Close()
		}
	}
}

// closeExcept closes the pools of g that old does not share, with their
// probes, evaluators and the backends old does not have: g was built but
// will not serve.
func (g *generation) closeExcept(old *generation) {
	keep := map[*poolState]bool{}
	var oldBackends map[*balancer.Backend]bool
	if old != nil {
		for _, ps := range old.pools {
			keep[ps] = true
		}
		oldBackends = old.backendSet()
	}
	for _, ps := range g.pools {
		if keep[ps] {
			continue
		}
		ps.close()
		for _, b := range ps.pool.Members() {
			if !oldBackends[b] {
				b.Conns.Close()
			}
		}
	}
}

// close stops the pool's discovery, probes, evaluator and module.
func (ps *poolState) close() {
	ps.stopDiscovery()
	if ps.prober != nil {
		ps.prober.Stop()
	}
	if ps.eval != nil {
		ps.eval.Close()
	}
	ps.pool.Close()
	if ps.h2c != nil {
		ps.h2c.Close()
	}
}

func (ps *poolState) stopDiscovery() {
	if ps.disc != nil {
		ps.disc.Stop()
	}
}

// start starts what runs beside a pool once its generation serves: probes
// and discovery.
func (ps *poolState) start() {
	if ps.prober != nil {
		ps.prober.Start()
	}
	if ps.disc != nil {
		ps.disc.Start(ps.applyDiscovered)
	}
}

// applyDiscovered makes the merged set of a pool's sources its members:
// backends that stay keep their health and connections, new ones start
// healthy, and removed ones close their idle connections (requests in
// flight on them finish).
func (ps *poolState) applyDiscovered(set []config.Backend) {
	ps.applyMu.Lock()
	defer ps.applyMu.Unlock()
	current := map[string]*balancer.Backend{}
	for _, b := range ps.pool.Members() {
		current[b.Address] = b
	}
	members := make([]*balancer.Backend, len(set))
	for i, b := range set {
		if c := current[b.Address]; c != nil && c.Weight == b.Weight && c.Zone == b.Zone && reflect.DeepEqual(c.Meta, b.Meta) {
			members[i] = c
			delete(current, b.Address)
			continue
		}
		members[i] = ps.newBackend(b)
	}
	ps.pool.SetMembers(members)
	if ps.prober != nil {
		ps.prober.Sync()
	}
	for _, gone := range current {
		gone.Conns.Close()
	}
	if ps.onApply != nil {
		ps.onApply()
	}
}
