package server

import (
	"encoding/hex"
	"net/http"
	"sort"
	"time"

	"github.com/wproxy/wproxy/core/admin"
	"github.com/wproxy/wproxy/core/discovery"
	"github.com/wproxy/wproxy/core/metrics"
	"github.com/wproxy/wproxy/hostabi"
)

// Metrics serves the Prometheus metrics.
func (s *Server) Metrics() http.Handler { return s.metrics.Handler() }

// MetricsRegistry returns the metrics, for tests.
func (s *Server) MetricsRegistry() *metrics.Metrics { return s.metrics }

// snapshot reads the state the metrics export; it is called at each scrape.
func (s *Server) snapshot() metrics.Snapshot {
	g := s.gen.Load()
	now := time.Now()
	var snap metrics.Snapshot
	s.mu.Lock()
	for _, l := range s.listeners {
		ls := metrics.ListenerState{Name: l.name, Conns: l.conns()}
		if l.tcp != nil {
			st := l.tcp.Stats()
			ls.TCP = &metrics.TCPState{Accepted: st.Accepted, ConnectFailures: st.ConnectFailures, BytesIn: st.BytesIn, BytesOut: st.BytesOut}
		}
		snap.Listeners = append(snap.Listeners, ls)
	}
	s.mu.Unlock()
	for _, name := range g.cfg.PoolNames() {
		ps := g.pools[name]
		p := ps.pool
		st := p.Stats()
		pst := metrics.PoolState{Name: name, Panic: p.InPanic(), InFlight: p.InFlight()}
		pst.Modules = append(pst.Modules, metrics.ModuleState{
			Module: p.Module().Source, Kind: metrics.KindBalancer, Calls: p.Picks(),
			Failures: st.Module.Failures, Fallbacks: st.Fallbacks, Instances: st.Module.Instances,
		})
		if ps.prober != nil {
			calls, failures := ps.prober.EvalStats()
			pst.Modules = append(pst.Modules, metrics.ModuleState{
				Module: ps.evalSource, Kind: metrics.KindHealth, Calls: calls,
				Failures: failures, Fallbacks: failures, Instances: 1,
			})
		}
		if ps.disc != nil {
			for _, d := range ps.disc.Statuses() {
				pst.Discovery = append(pst.Discovery, metrics.DiscoveryState{Source: d.Source, OK: d.OK, Backends: d.Backends, Updates: d.Updates, Errors: d.Errors})
			}
		}
		for _, b := range p.Members() {
			h := b.HealthStatus()
			cs := b.Conns.Stats()
			pst.Backends = append(pst.Backends, metrics.BackendState{
				Address: b.Address, Health: h.State().String(), Ejected: h.Ejected(now),
				Ejections: h.Ejections(), InFlight: b.InFlight(), Picks: b.Requests(),
				ConnsOpen: cs.Open, ConnsIdle: cs.Idle, ConnsCreated: cs.Created, ConnsReused: cs.Reused,
			})
		}
		snap.Pools = append(snap.Pools, pst)
	}
	snap.Reloads = metrics.ReloadState{OK: s.reloadsOK.Load(), Rejected: s.reloadsRejected.Load(), LastOK: !s.lastReloadFailed.Load()}
	return snap
}

// Discovery returns the status of every pool's discovery sources.
func (s *Server) Discovery() map[string][]discovery.Status {
	out := map[string][]discovery.Status{}
	for name, ps := range s.gen.Load().pools {
		if ps.disc != nil {
			out[name] = ps.disc.Statuses()
		}
	}
	return out
}

// retainMetrics drops the series of what g does not have: listeners,
// routes, pools, backends and modules a reload removed.
func (s *Server) retainMetrics(g *generation) {
	live := map[metrics.SeriesKey]bool{}
	for _, l := range g.cfg.Listeners {
		live[metrics.SeriesKey{Listener: l.Name}] = true
		for _, r := range l.Routes {
			k := metrics.SeriesKey{Listener: l.Name, Route: metrics.RouteLabel(r.Host, r.PathPrefix), Pool: r.Pool}
			live[k] = true
			for _, b := range g.pools[r.Pool].pool.Members() {
				k.Backend = b.Address
				live[k] = true
			}
		}
	}
	s.metrics.Retain(func(k metrics.SeriesKey) bool { return live[k] })
	mods := map[metrics.ModuleKey]bool{}
	for name, ps := range g.pools {
		mods[metrics.ModuleKey{Pool: name, Module: ps.pool.Module().Source, Kind: metrics.KindBalancer}] = true
		if ps.evalSource != "" {
			mods[metrics.ModuleKey{Pool: name, Module: ps.evalSource, Kind: metrics.KindHealth}] = true
		}
	}
	s.metrics.RetainModules(func(k metrics.ModuleKey) bool { return mods[k] })
}

// Modules describes the modules of the configuration being served, by pool.
func (s *Server) Modules() []admin.Module {
	g := s.gen.Load()
	var out []admin.Module
	for _, name := range g.cfg.PoolNames() {
		ps := g.pools[name]
		st := ps.pool.Stats()
		mod := ps.pool.Module()
		out = append(out, admin.Module{
			Name: mod.Source, Kind: metrics.KindBalancer, ABI: hostabi.LBModuleV1, Digest: mod.Digest,
			Pool: name, Instances: st.Module.Instances, Calls: ps.pool.Picks(), Failures: st.Module.Failures,
		})
		if ps.prober != nil {
			calls, failures := ps.prober.EvalStats()
			out = append(out, admin.Module{
				Name: ps.evalSource, Kind: metrics.KindHealth, ABI: hostabi.HealthModuleV1, Digest: hex.EncodeToString(ps.evalDigest[:]),
				Pool: name, Instances: 1, Calls: calls, Failures: failures,
			})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pool < out[j].Pool })
	return out
}
