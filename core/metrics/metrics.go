// Package metrics exposes wproxy's figures in the Prometheus text format on
// the admin listener's /metrics.
//
// Two kinds of figures: those counted per request (requests and their
// durations by listener, route, pool, backend and status class; sampled
// module call durations) live in client_golang vectors whose children are
// looked up once and kept, so that a request costs a few atomic additions
// and no label hashing; everything else (connections, health, picks,
// instances, reloads) is state the proxy keeps anyway and is read when
// Prometheus scrapes, from a Snapshot.
//
// Label values come from the configuration only (listener and pool names,
// routes, backend addresses, module names) and series of what a reload
// removed are deleted, so cardinality stays bounded by the configuration.
// Metrics is safe for concurrent use.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// RequestBuckets are the request duration histogram's upper bounds, in
// seconds: from half a millisecond (a proxied request on a LAN) to a minute
// (the default response header timeout).
var RequestBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// CallBuckets are the module call duration histogram's upper bounds, in
// seconds: a pick takes from about 100 ns to a few µs; a call near the
// time budget takes milliseconds.
var CallBuckets = []float64{1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 1e-4, 1e-3, 1e-2, 0.1}

// Metrics holds a registry and the per-request vectors.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	calls    *prometheus.HistogramVec

	mu     sync.Mutex
	series map[SeriesKey]*Series
	mods   map[ModuleKey]prometheus.Observer
}

// New returns metrics whose state figures are read from snap at each
// scrape. snap must be safe to call concurrently with everything else.
func New(snap func() Snapshot) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wproxy_http_requests_total",
			Help: "Requests answered, by listener, route, pool, backend (empty when none was picked) and status class (1xx to 5xx, or none when the client left before an answer).",
		}, requestLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wproxy_http_request_duration_seconds",
			Help:    "Time from the request's header to the end of its answer, by listener, route, pool, backend and status class.",
			Buckets: RequestBuckets,
		}, requestLabels),
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wproxy_module_call_duration_seconds",
			Help:    "Duration of module calls: one balancing pick in 64, every health evaluation.",
			Buckets: CallBuckets,
		}, moduleLabels),
		series: map[SeriesKey]*Series{},
		mods:   map[ModuleKey]prometheus.Observer{},
	}
	m.reg.MustRegister(m.requests, m.duration, m.calls, newStateCollector(snap),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry returns the registry, for tests and for gathering.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

var requestLabels = []string{"listener", "route", "pool", "backend", "code"}

// SeriesKey names the requests of one backend through one route.
type SeriesKey struct {
	Listener, Route, Pool, Backend string
}

// Series counts the requests of one SeriesKey. The children of each status
// class are looked up on first use and kept. A nil *Series counts nothing.
type Series struct {
	m       *Metrics
	key     SeriesKey
	class   [6]atomic.Pointer[classSeries] // none, 1xx … 5xx
	dropped atomic.Bool                    // by Retain: count nothing more
}

type classSeries struct {
	count prometheus.Counter
	dur   prometheus.Observer
}

var classNames = [6]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}

// Series returns the series of k, the same one for the same key until a
// Retain drops it.
func (m *Metrics) Series(k SeriesKey) *Series {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.series[k]
	if s == nil {
		s = &Series{m: m, key: k}
		m.series[k] = s
	}
	return s
}

// Observe counts one request answered with status (0: no answer) that took
// d.
func (s *Series) Observe(status int, d time.Duration) {
	if s == nil {
		return
	}
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	cs := s.class[c].Load()
	if cs == nil {
		cs = s.child(c)
	}
	cs.count.Inc()
	cs.dur.Observe(d.Seconds())
}

// unexported counts what reaches a dropped series: requests still in flight
// on what a reload removed.
var unexported = &classSeries{
	count: prometheus.NewCounter(prometheus.CounterOpts{Name: "unexported"}),
	dur:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "unexported"}),
}

func (s *Series) child(c int) *classSeries {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.dropped.Load() {
		return unexported
	}
	vals := []string{s.key.Listener, s.key.Route, s.key.Pool, s.key.Backend, classNames[c]}
	cs := &classSeries{count: s.m.requests.WithLabelValues(vals...), dur: s.m.duration.WithLabelValues(vals...)}
	if !s.class[c].CompareAndSwap(nil, cs) {
		return s.class[c].Load()
	}
	return cs
}

// Retain deletes the series whose key keep rejects, and their children:
// what a reload removed stops being exported.
func (m *Metrics) Retain(keep func(SeriesKey) bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.series {
		if keep(k) {
			continue
		}
		delete(m.series, k)
		s.dropped.Store(true)
		for c := range s.class {
			if s.class[c].Load() != nil {
				vals := []string{k.Listener, k.Route, k.Pool, k.Backend, classNames[c]}
				m.requests.DeleteLabelValues(vals...)
				m.duration.DeleteLabelValues(vals...)
			}
		}
	}
}

// RouteSeries hands out the series of one route by backend. The zero
// value of a nil *RouteSeries counts nothing.
type RouteSeries struct {
	m                     *Metrics
	listener, route, pool string
	none                  *Series  // requests without a backend
	byBackend             sync.Map // Addresser → *Series
}

// Route returns the series of a route of a listener to a pool.
func (m *Metrics) Route(listener, route, pool string) *RouteSeries {
	if m == nil {
		return nil
	}
	return &RouteSeries{m: m, listener: listener, route: route, pool: pool,
		none: m.Series(SeriesKey{Listener: listener, Route: route, Pool: pool})}
}

// Addresser is what names a backend.
type Addresser interface{ Addr() string }

// For returns the series of the route's requests to b (nil: requests that
// reached no backend).
func (rs *RouteSeries) For(b Addresser) *Series {
	if rs == nil {
		return nil
	}
	if b == nil {
		return rs.none
	}
	if s, ok := rs.byBackend.Load(b); ok {
		return s.(*Series)
	}
	s := rs.m.Series(SeriesKey{Listener: rs.listener, Route: rs.route, Pool: rs.pool, Backend: b.Addr()})
	rs.byBackend.Store(b, s)
	return s
}

var moduleLabels = []string{"pool", "module", "kind"}

// ModuleKey names a module in a pool.
type ModuleKey struct {
	Pool, Module, Kind string
}

// Kinds of module.
const (
	KindBalancer = "balancer"
	KindHealth   = "health"
)

// CallObserver returns the function that records the duration of one call
// of a module, or nil when m is nil.
func (m *Metrics) CallObserver(k ModuleKey) func(time.Duration) {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	o := m.mods[k]
	if o == nil {
		o = m.calls.WithLabelValues(k.Pool, k.Module, k.Kind)
		m.mods[k] = o
	}
	m.mu.Unlock()
	return func(d time.Duration) { o.Observe(d.Seconds()) }
}

// RetainModules deletes the call durations of the modules keep rejects.
func (m *Metrics) RetainModules(keep func(ModuleKey) bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.mods {
		if !keep(k) {
			delete(m.mods, k)
			m.calls.DeleteLabelValues(k.Pool, k.Module, k.Kind)
		}
	}
}

// RouteLabel names a route in labels: its host ("*" for any) followed by
// its path prefix, such as "api.example.com/v1" or "*/".
func RouteLabel(host, pathPrefix string) string {
	if host == "" {
		host = "*"
	}
	if pathPrefix == "" {
		pathPrefix = "/"
	}
	return host + pathPrefix
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
