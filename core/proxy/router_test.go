package proxy

import (
	"testing"

	"github.com/wproxy/wproxy/core/balancer"
)

func TestRouterSpecificity(t *testing.T) {
	pools := map[string]*balancer.Pool{}
	for _, n := range []string{"any", "anyapi", "wild", "exact", "exactv2"} {
		pools[n] = &balancer.Pool{Name: n}
	}
	rt := NewRouter([]Route{
		{PathPrefix: "/", Pool: pools["any"]},
		{PathPrefix: "/api", Pool: pools["anyapi"]},
		{Host: "*.example.com", PathPrefix: "/", Pool: pools["wild"]},
		{Host: "www.example.com", PathPrefix: "/", Pool: pools["exact"]},
		{Host: "www.example.com", PathPrefix: "/v2", Pool: pools["exactv2"]},
	})
	tests := []struct{ host, path, want string }{
		{"www.example.com", "/v2/x", "exactv2"},
		{"WWW.Example.COM:8443", "/v1", "exact"},
		{"www.example.com.", "/", "exact"},
		{"shop.example.com", "/api", "wild"},
		{"example.com", "/api/x", "anyapi"},
		{"other.org", "/", "any"},
		{"[::1]:80", "/", "any"},
	}
	for _, tt := range tests {
		r := rt.Match(tt.host, tt.path)
		if r == nil || r.Pool.Name != tt.want {
			t.Errorf("%s%s matched %v, want %s", tt.host, tt.path, r, tt.want)
		}
	}
	if r := NewRouter([]Route{{Host: "a.com", PathPrefix: "/x", Pool: pools["any"]}}).Match("a.com", "/y"); r != nil {
		t.Errorf("matched %v", r)
	}
}

func TestNormalizeHostNoAlloc(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { normalizeHost("www.example.com:8080") }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
