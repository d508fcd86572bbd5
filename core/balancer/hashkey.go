package balancer

import (
	"net"
	"net/http"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/wproxy/wproxy/core/config"
)

// HashKey computes a request's hash from the pool's configured sources.
//
// The hash is xxHash64 of the key: one source's value as it appears in the
// request, or for several sources their values each followed by a zero byte.
// Headers use their first value; cookies and query parameters their raw
// (undecoded) value; client_ip the address without port; host the Host
// header without port; path the decoded path. Every wproxy instance computes
// the same hash for the same request, so hashing policies agree across
// instances.
type HashKey []config.HashSource

// Hash returns the request's hash and whether every source was present.
func (k HashKey) Hash(r *http.Request) (uint64, bool) {
	switch len(k) {
	case 0:
		return 0, false
	case 1:
		v, ok := value(k[0], r)
		if !ok {
			return 0, false
		}
		return xxhash.Sum64String(v), true
	}
	var d xxhash.Digest
	d.Reset()
	for _, s := range k {
		v, ok := value(s, r)
		if !ok {
			return 0, false
		}
		d.WriteString(v)
		d.Write([]byte{0})
	}
	return d.Sum64(), true
}

func value(s config.HashSource, r *http.Request) (string, bool) {
	switch s.Kind {
	case "header":
		if vs := r.Header[s.Name]; len(vs) > 0 {
			return vs[0], true
		}
	case "cookie":
		return cookie(r.Header["Cookie"], s.Name)
	case "query":
		return queryParam(r.URL.RawQuery, s.Name)
	case "client_ip":
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			return host, true
		}
		return r.RemoteAddr, r.RemoteAddr != ""
	case "host":
		h := r.Host
		if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
			h = h[:i]
		}
		return h, h != ""
	case "path":
		return r.URL.Path, true
	}
	return "", false
}

// cookie finds a cookie's value in Cookie header lines without allocating.
func cookie(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				return strings.Trim(v, `"`), true
			}
		}
	}
	return "", false
}

// queryParam finds a query parameter's raw value without allocating.
func queryParam(q, name string) (string, bool) {
	for q != "" {
		var part string
		part, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(part, "=")
		if k == name {
			return v, true
		}
	}
	return "", false
}

// requestAttrs answers a module's request_attr calls from the request.
type requestAttrs http.Request

// Attr implements lbhost.Attrs.
func (a *requestAttrs) Attr(name string) (string, bool) {
	r := (*http.Request)(a)
	switch name {
	case "method":
		return r.Method, true
	case "query":
		return r.URL.RawQuery, true
	case "path", "host", "client_ip":
		return value(config.HashSource{Kind: name}, r)
	}
	kind, arg, ok := strings.Cut(name, ":")
	if !ok || arg == "" {
		return "", false
	}
	switch kind {
	case "header":
		return value(config.HashSource{Kind: kind, Name: http.CanonicalHeaderKey(arg)}, r)
	case "cookie", "query":
		return value(config.HashSource{Kind: kind, Name: arg}, r)
	}
	return "", false
}
