package balancer

import (
	"net/http/httptest"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestHashKey(t *testing.T) {
	r := httptest.NewRequest("GET", "http://shop.example.com:8080/cart?id=42&x=%20y&flag", nil)
	r.RemoteAddr = "192.0.2.7:51234"
	r.Header.Set("X-User", "alice")
	r.Header.Add("Cookie", "theme=dark; session=abc123")
	r.Header.Add("Cookie", `other="q"`)
	tests := []struct {
		key  HashKey
		want string
		ok   bool
	}{
		{HashKey{{Kind: "header", Name: "X-User"}}, "alice", true},
		{HashKey{{Kind: "header", Name: "X-Missing"}}, "", false},
		{HashKey{{Kind: "cookie", Name: "session"}}, "abc123", true},
		{HashKey{{Kind: "cookie", Name: "other"}}, "q", true},
		{HashKey{{Kind: "cookie", Name: "sess"}}, "", false},
		{HashKey{{Kind: "query", Name: "id"}}, "42", true},
		{HashKey{{Kind: "query", Name: "x"}}, "%20y", true},
		{HashKey{{Kind: "query", Name: "flag"}}, "", true},
		{HashKey{{Kind: "query", Name: "i"}}, "", false},
		{HashKey{{Kind: "client_ip"}}, "192.0.2.7", true},
		{HashKey{{Kind: "host"}}, "shop.example.com", true},
		{HashKey{{Kind: "path"}}, "/cart", true},
	}
	for _, tt := range tests {
		h, ok := tt.key.Hash(r)
		if ok != tt.ok || (ok && h != xxhash.Sum64String(tt.want)) {
			t.Errorf("%+v: hash %x ok %v, want hash of %q ok %v", tt.key, h, ok, tt.want, tt.ok)
		}
	}
	combined := HashKey{{Kind: "header", Name: "X-User"}, {Kind: "client_ip"}}
	h, ok := combined.Hash(r)
	if !ok || h != xxhash.Sum64String("alice\x00192.0.2.7\x00") {
		t.Errorf("combined: %x %v", h, ok)
	}
	if _, ok := (HashKey{{Kind: "header", Name: "X-User"}, {Kind: "cookie", Name: "none"}}).Hash(r); ok {
		t.Error("a combination with a missing source is present")
	}
	if _, ok := HashKey(nil).Hash(r); ok {
		t.Error("an empty key is present")
	}
}

func TestHashKeyAllocatesNothing(t *testing.T) {
	r := httptest.NewRequest("GET", "/p?id=7", nil)
	r.Header.Set("Cookie", "a=1; session=x")
	key := HashKey{{Kind: "cookie", Name: "session"}, {Kind: "query", Name: "id"}, {Kind: "client_ip"}}
	if n := testing.AllocsPerRun(100, func() { key.Hash(r) }); n != 0 {
		t.Fatalf("%v allocations per hash", n)
	}
}

func TestRequestAttrs(t *testing.T) {
	r := httptest.NewRequest("POST", "http://Shop.Example.com:8080/cart/1?id=42&x=a%20b", nil)
	r.RemoteAddr = "192.0.2.7:5000"
	r.Header.Set("X-Tenant", "acme")
	r.Header.Set("Cookie", "session=s1")
	a := (*requestAttrs)(r)
	for name, want := range map[string]string{
		"method": "POST", "path": "/cart/1", "query": "id=42&x=a%20b", "host": "Shop.Example.com", "client_ip": "192.0.2.7",
		"header:x-tenant": "acme", "header:X-Tenant": "acme", "cookie:session": "s1", "query:x": "a%20b",
	} {
		if got, ok := a.Attr(name); !ok || got != want {
			t.Errorf("%s = %q, %v; want %q", name, got, ok, want)
		}
	}
	for _, name := range []string{"header:missing", "cookie:none", "query:nope", "bogus", "header:", "fragment"} {
		if v, ok := a.Attr(name); ok {
			t.Errorf("%s present: %q", name, v)
		}
	}
}
