package proxy

import (
	"sort"
	"strings"

	"github.com/wproxy/wproxy/core/balancer"
	"github.com/wproxy/wproxy/core/metrics"
)

// Route sends matching requests to a pool.
type Route struct {
	// Host is "" (any host), an exact lowercase host, or "*.suffix".
	Host string
	// PathPrefix matches paths that start with it.
	PathPrefix string
	Pool       *balancer.Pool
	// H2C, when set, forwards the route's requests over HTTP/2 cleartext
	// (the pool's upstream_protocol h2c) instead of HTTP/1.1.
	H2C *H2C
	// Series counts the route's requests; nil counts nothing.
	Series *metrics.RouteSeries
}

// Router finds the route of a request. It is immutable and safe for
// concurrent use.
type Router struct {
	routes []Route // most specific first
}

// NewRouter orders routes by specificity: exact host, then wildcard host,
// then any host; within each, the longest path prefix first.
func NewRouter(routes []Route) *Router {
	rs := append([]Route(nil), routes...)
	rank := func(r Route) int {
		switch {
		case r.Host == "":
			return 2
		case strings.HasPrefix(r.Host, "*."):
			return 1
		}
		return 0
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if ri, rj := rank(rs[i]), rank(rs[j]); ri != rj {
			return ri < rj
		}
		if len(rs[i].Host) != len(rs[j].Host) {
			return len(rs[i].Host) > len(rs[j].Host) // longer wildcard suffix is more specific
		}
		return len(rs[i].PathPrefix) > len(rs[j].PathPrefix)
	})
	return &Router{routes: rs}
}

// Match returns the route for a request's Host header and path, or nil.
func (rt *Router) Match(host, path string) *Route {
	host = normalizeHost(host)
	for i := range rt.routes {
		r := &rt.routes[i]
		if !strings.HasPrefix(path, r.PathPrefix) {
			continue
		}
		switch {
		case r.Host == "":
		case strings.HasPrefix(r.Host, "*."):
			if !strings.HasSuffix(host, r.Host[1:]) {
				continue
			}
		case r.Host != host:
			continue
		}
		return r
	}
	return nil
}

// normalizeHost drops the port and a trailing dot and lowercases, without
// allocating when the host is already lowercase.
func normalizeHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if 'A' <= h[i] && h[i] <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
