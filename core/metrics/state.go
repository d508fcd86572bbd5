package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Snapshot is the state the proxy keeps anyway, read at each scrape.
type Snapshot struct {
	Listeners []ListenerState
	Pools     []PoolState
	Reloads   ReloadState
}

// ListenerState is one listener's connections.
type ListenerState struct {
	Name  string
	Conns int // client connections open now
	// TCP is set for a tcp (layer-4) listener.
	TCP *TCPState
}

// TCPState counts a tcp listener's connections and bytes.
type TCPState struct {
	Accepted, ConnectFailures uint64
	BytesIn, BytesOut         uint64 // client to backend, backend to client
}

// PoolState is one pool.
type PoolState struct {
	Name      string
	Panic     bool  // too few backends healthy: all get traffic
	InFlight  int64 // requests in flight
	Backends  []BackendState
	Modules   []ModuleState
	Discovery []DiscoveryState
}

// DiscoveryState is one discovery source of a pool.
type DiscoveryState struct {
	Source   string // its name: file:PATH, etcd:PREFIX or module:NAME
	OK       bool   // whether its last look succeeded
	Backends int    // in its last good set
	Updates  uint64 // changes of its set
	Errors   uint64 // looks that failed
}

// BackendState is one backend of a pool.
type BackendState struct {
	Address   string
	Health    string // up, degraded or down, as active checks say
	Ejected   bool   // by passive checks, now
	Ejections uint64 // since it joined
	InFlight  int64
	Picks     uint64 // requests the pool sent it
	// Connections to the backend.
	ConnsOpen    int64
	ConnsIdle    int
	ConnsCreated uint64
	ConnsReused  uint64 // requests sent on a connection that served one before
}

// ModuleState is one module instance set of a pool.
type ModuleState struct {
	Module    string // its source: a built-in name or a file path
	Kind      string // KindBalancer or KindHealth
	Calls     uint64
	Failures  uint64 // calls that trapped, ran out of time or answered nonsense
	Fallbacks uint64 // answers the fallback gave instead
	Instances int    // alive now
}

// ReloadState counts reloads.
type ReloadState struct {
	OK, Rejected uint64
	LastOK       bool // whether the last reload was accepted (true before any)
}

var healthStates = []string{"up", "degraded", "down"}

type stateCollector struct {
	snap func() Snapshot

	listenerConns, poolPanic, poolInFlight                            *prometheus.Desc
	backendHealth, backendEjected, backendEjections, backendInFlight  *prometheus.Desc
	backendPicks, connsOpen, connsCreated, connsReused                *prometheus.Desc
	moduleCalls, moduleFailures, moduleFallbacks, moduleInstances     *prometheus.Desc
	reloads, lastReload                                               *prometheus.Desc
	discoveryUp, discoveryBackends, discoveryUpdates, discoveryErrors *prometheus.Desc
	tcpAccepted, tcpConnectFailures, tcpBytes                         *prometheus.Desc
}

func newStateCollector(snap func() Snapshot) *stateCollector {
	pb := []string{"pool", "backend"}
	mod := moduleLabels
	return &stateCollector{
		snap:               snap,
		listenerConns:      prometheus.NewDesc("wproxy_listener_connections", "Client connections open now.", []string{"listener"}, nil),
		poolPanic:          prometheus.NewDesc("wproxy_pool_panic", "1 while the pool is in panic mode: too few backends looked healthy, so all get traffic.", []string{"pool"}, nil),
		poolInFlight:       prometheus.NewDesc("wproxy_pool_requests_in_flight", "Requests in flight through the pool.", []string{"pool"}, nil),
		backendHealth:      prometheus.NewDesc("wproxy_backend_health", "1 for the backend's health state as active checks see it, 0 for the others.", []string{"pool", "backend", "state"}, nil),
		backendEjected:     prometheus.NewDesc("wproxy_backend_ejected", "1 while passive checks keep the backend out.", pb, nil),
		backendEjections:   prometheus.NewDesc("wproxy_backend_ejections_total", "Ejections by passive checks.", pb, nil),
		backendInFlight:    prometheus.NewDesc("wproxy_backend_requests_in_flight", "Requests in flight to the backend.", pb, nil),
		backendPicks:       prometheus.NewDesc("wproxy_backend_picks_total", "Requests the pool's policy sent to the backend.", pb, nil),
		connsOpen:          prometheus.NewDesc("wproxy_upstream_connections", "Connections to the backend open now, by state (active: serving a request; idle: pooled).", []string{"pool", "backend", "state"}, nil),
		connsCreated:       prometheus.NewDesc("wproxy_upstream_connections_created_total", "Connections dialed to the backend.", pb, nil),
		connsReused:        prometheus.NewDesc("wproxy_upstream_connection_reuses_total", "Requests sent on a pooled connection that had served one before.", pb, nil),
		moduleCalls:        prometheus.NewDesc("wproxy_module_calls_total", "Calls into the module: picks, or health evaluations.", mod, nil),
		moduleFailures:     prometheus.NewDesc("wproxy_module_call_failures_total", "Calls that trapped, ran past their time budget or answered nonsense; the instance is replaced.", mod, nil),
		moduleFallbacks:    prometheus.NewDesc("wproxy_module_fallbacks_total", "Answers the fallback gave because the module failed.", mod, nil),
		moduleInstances:    prometheus.NewDesc("wproxy_module_instances", "Module instances alive now.", mod, nil),
		reloads:            prometheus.NewDesc("wproxy_reloads_total", "Configuration reloads, by result (ok or rejected).", []string{"result"}, nil),
		lastReload:         prometheus.NewDesc("wproxy_config_last_reload_successful", "1 when the last reload was accepted (or none was tried), 0 when it was rejected.", nil, nil),
		tcpAccepted:        prometheus.NewDesc("wproxy_tcp_connections_total", "Client connections a tcp listener accepted.", []string{"listener"}, nil),
		tcpConnectFailures: prometheus.NewDesc("wproxy_tcp_connect_failures_total", "Backend connects that failed for a tcp listener (each retried on another backend when one is left).", []string{"listener"}, nil),
		tcpBytes:           prometheus.NewDesc("wproxy_tcp_bytes_total", "Bytes a tcp listener copied, by direction (in: client to backend, out: backend to client).", []string{"listener", "direction"}, nil),
		discoveryUp:        prometheus.NewDesc("wproxy_discovery_up", "1 when the discovery source's last look succeeded, 0 while it fails (the pool keeps its last good set).", []string{"pool", "source"}, nil),
		discoveryBackends:  prometheus.NewDesc("wproxy_discovery_backends", "Backends in the discovery source's last good set.", []string{"pool", "source"}, nil),
		discoveryUpdates:   prometheus.NewDesc("wproxy_discovery_updates_total", "Changes of the discovery source's set.", []string{"pool", "source"}, nil),
		discoveryErrors:    prometheus.NewDesc("wproxy_discovery_errors_total", "Looks at the discovery source that failed.", []string{"pool", "source"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.listenerConns, c.poolPanic, c.poolInFlight,
		c.backendHealth, c.backendEjected, c.backendEjections, c.backendInFlight,
		c.backendPicks, c.connsOpen, c.connsCreated, c.connsReused,
		c.moduleCalls, c.moduleFailures, c.moduleFallbacks, c.moduleInstances,
		c.reloads, c.lastReload,
		c.discoveryUp, c.discoveryBackends, c.discoveryUpdates, c.discoveryErrors,
		c.tcpAccepted, c.tcpConnectFailures, c.tcpBytes,
	} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, l := range s.Listeners {
		gauge(c.listenerConns, float64(l.Conns), l.Name)
		if t := l.TCP; t != nil {
			counter(c.tcpAccepted, t.Accepted, l.Name)
			counter(c.tcpConnectFailures, t.ConnectFailures, l.Name)
			counter(c.tcpBytes, t.BytesIn, l.Name, "in")
			counter(c.tcpBytes, t.BytesOut, l.Name, "out")
		}
	}
	for _, p := range s.Pools {
		gauge(c.poolPanic, boolValue(p.Panic), p.Name)
		gauge(c.poolInFlight, float64(p.InFlight), p.Name)
		for _, b := range p.Backends {
			for _, st := range healthStates {
				gauge(c.backendHealth, boolValue(b.Health == st), p.Name, b.Address, st)
			}
			gauge(c.backendEjected, boolValue(b.Ejected), p.Name, b.Address)
			counter(c.backendEjections, b.Ejections, p.Name, b.Address)
			gauge(c.backendInFlight, float64(b.InFlight), p.Name, b.Address)
			counter(c.backendPicks, b.Picks, p.Name, b.Address)
			gauge(c.connsOpen, float64(max(b.ConnsOpen-int64(b.ConnsIdle), 0)), p.Name, b.Address, "active")
			gauge(c.connsOpen, float64(b.ConnsIdle), p.Name, b.Address, "idle")
			counter(c.connsCreated, b.ConnsCreated, p.Name, b.Address)
			counter(c.connsReused, b.ConnsReused, p.Name, b.Address)
		}
		for _, m := range p.Modules {
			counter(c.moduleCalls, m.Calls, p.Name, m.Module, m.Kind)
			counter(c.moduleFailures, m.Failures, p.Name, m.Module, m.Kind)
			counter(c.moduleFallbacks, m.Fallbacks, p.Name, m.Module, m.Kind)
			gauge(c.moduleInstances, float64(m.Instances), p.Name, m.Module, m.Kind)
		}
		for _, d := range p.Discovery {
			gauge(c.discoveryUp, boolValue(d.OK), p.Name, d.Source)
			gauge(c.discoveryBackends, float64(d.Backends), p.Name, d.Source)
			counter(c.discoveryUpdates, d.Updates, p.Name, d.Source)
			counter(c.discoveryErrors, d.Errors, p.Name, d.Source)
		}
	}
	counter(c.reloads, s.Reloads.OK, "ok")
	counter(c.reloads, s.Reloads.Rejected, "rejected")
	gauge(c.lastReload, boolValue(s.Reloads.LastOK))
}
