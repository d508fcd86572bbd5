package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
listeners:
  - name: public
    address: 127.0.0.1:8080
    routes:
      - host: api.example.com
        path_prefix: /v1
        pool: api
      - pool: web
pools:
  api:
    policy: round_robin
    hash_key: [header:x-user, client_ip]
    backends:
      - address: 10.0.0.1:80
        weight: 5
        zone: a
        meta: {version: "2"}
      - address: backend.internal:80
  web:
    backends:
      - address: "[::1]:8081"
timeouts:
  connect: 2s
`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good), "wproxy.yaml", ".")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Listeners[0].Routes[1].PathPrefix; got != "/" {
		t.Errorf("default path_prefix = %q", got)
	}
	api := c.Pools["api"]
	if api.Backends[0].Weight != 5 || api.Backends[1].Weight != 1 {
		t.Errorf("weights %d %d", api.Backends[0].Weight, api.Backends[1].Weight)
	}
	if got := api.HashSources(); len(got) != 2 || got[0] != (HashSource{Kind: "header", Name: "X-User"}) || got[1].Kind != "client_ip" {
		t.Errorf("hash sources %+v", got)
	}
	if c.Pools["web"].Policy != "round_robin" || c.Pools["web"].MaxIdleConns != DefaultMaxIdleConns {
		t.Errorf("pool defaults not applied: %+v", c.Pools["web"])
	}
	if c.Timeouts.Connect != 2*time.Second || c.Timeouts.ResponseHeader != DefaultResponseHeader {
		t.Errorf("timeouts %+v", c.Timeouts)
	}
	if c.Limits != (Limits{MaxConnections: 10000, MaxHeaderBytes: 65536, MaxRequestLineBytes: 8192}) {
		t.Errorf("limits %+v", c.Limits)
	}
	if string(api.PolicyConfigJSON()) != "{}" {
		t.Errorf("policy config %s", api.PolicyConfigJSON())
	}
}

func TestPolicyConfigIsJSON(t *testing.T) {
	src := strings.Replace(good, "    policy: round_robin\n", "    policy: round_robin\n    policy_config:\n      table_size: 7\n      keys: [a, b]\n      nested: {x: true}\n", 1)
	c, err := Parse([]byte(src), "c.yaml", ".")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(c.Pools["api"].PolicyConfigJSON()); got != `{"keys":["a","b"],"nested":{"x":true},"table_size":7}` {
		t.Fatalf("json %s", got)
	}
}

// Each case replaces part of the good configuration and expects one error
// naming the file, the line and the field.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		old, new  string
		want      string
		wantExtra string
	}{
		{"unknown top field", "timeouts:", "timeoutz:", `c.yaml:23: unknown field "timeoutz" in the top level`, "known fields: listeners, pools, timeouts, limits, wasm"},
		{"unknown pool field", "    policy: round_robin", "    polcy: round_robin", `c.yaml:12: unknown field "polcy" in a pool`, "policy"},
		{"unknown backend field", "        zone: a", "        zome: a", `c.yaml:17: unknown field "zome" in a backend`, ""},
		{"bad address", "address: 10.0.0.1:80", "address: 10.0.0.1", `c.yaml:15: pools.api.backends[0].address: "10.0.0.1": not host:port`, ""},
		{"bad port", "address: 10.0.0.1:80", "address: 10.0.0.1:99999", `c.yaml:15: pools.api.backends[0].address: "10.0.0.1:99999": port "99999"`, ""},
		{"bad listen address", "address: 127.0.0.1:8080", "address: 127.0.0.1:http-alt", `c.yaml:4: listeners[0].address`, "port"},
		{"unknown policy", "policy: round_robin", "policy: round_robbin", `c.yaml:12: pools.api.policy: unknown policy "round_robbin"`, "round_robin"},
		{"route to unknown pool", "        pool: api", "        pool: apii", `c.yaml:8: listeners[0].routes[0].pool: unknown pool "apii" (pools: api, web)`, ""},
		{"bad duration", "connect: 2s", "connect: soon", `c.yaml:24: the string "soon" where a duration such as 5s or 1m30s is expected`, ""},
		{"number for duration", "connect: 2s", "connect: 2", `c.yaml:24: the number 2 where a duration`, ""},
		{"weight not a number", "weight: 5", "weight: heavy", `c.yaml:16: the string "heavy" where a whole number is expected`, ""},
		{"weight too big", "weight: 5", "weight: 2000000", `c.yaml:16: pools.api.backends[0].weight: 2000000 is more than the maximum weight 1000000`, ""},
		{"negative weight", "weight: 5", "weight: -1", `c.yaml:16:`, "whole number"},
		{"bad hash key", "[header:x-user, client_ip]", "[header, client_ip]", `c.yaml:13: pools.api.hash_key[0]: "header": header needs a name`, ""},
		{"unknown hash source", "[header:x-user, client_ip]", "[header:x-user, geo]", `c.yaml:13: pools.api.hash_key[1]: "geo": unknown source`, ""},
		{"path prefix", "path_prefix: /v1", "path_prefix: v1", `c.yaml:7: listeners[0].routes[0].path_prefix: "v1" must start with /`, ""},
		{"route host with port", "host: api.example.com", "host: api.example.com:80", `c.yaml:6: listeners[0].routes[0].host`, "no port"},
		{"bad pool name", "  web:", "  Web:", `pools.Web: "Web" is not a valid pool name`, ""},
		{"no connections", "timeouts:", "limits: {max_connections: -1}\ntimeouts:", `c.yaml:23: limits.max_connections: -1 is out of range 1 to 1000000`, ""},
		{"tiny header limit", "timeouts:", "limits: {max_header_bytes: 100}\ntimeouts:", `c.yaml:23: limits.max_header_bytes: 100 is out of range 1024`, ""},
		{"request line above header", "timeouts:", "limits: {max_header_bytes: 4096, max_request_line_bytes: 8192}\ntimeouts:", `c.yaml:23: limits.max_request_line_bytes: 8192 is out of range 256 to max_header_bytes (4096)`, ""},
		{"duplicate backend", "backend.internal:80", "10.0.0.1:80", `c.yaml:19: pools.api.backends[1].address: backend 10.0.0.1:80 is listed as backends[0] too`, ""},
		{"policy not wasm", "policy: round_robin", "policy: ./mine.so", `pools.api.policy: "./mine.so": a module file must end in .wasm`, ""},
		{"policy_config not mapping", "    policy: round_robin", "    policy: round_robin\n    policy_config: [1, 2]", `pools.api.policy_config: policy_config must be a mapping`, ""},
		{"listeners not a list", "listeners:\n  - name: public", "listeners: 3\nx:\n  - name: public", `c.yaml:2: the number 3 where a list is expected`, ""},
		{"bad yaml", "pools:", "pools: [", `c.yaml:`, "not valid YAML"},
		{"tab indentation", "  web:", "\tweb:", `c.yaml:`, "not valid YAML"},
		{"memory", "timeouts:", "wasm:\n  max_memory_mb: 9999\ntimeouts:", `wasm.max_memory_mb: 9999 is out of range`, ""},
		{"negative timeout", "connect: 2s", "connect: -2s", `timeouts.connect: -2s is negative`, ""},
		{"two kinds in one source", "    policy: round_robin", "    policy: round_robin\n    discovery: [{module: etcd, etcd: {endpoints: [http://a:1], prefix: /p}}]", `c.yaml:13: pools.api.discovery[0]: a source is exactly one of file, etcd, module and plugin`, ""},
		{"etcd without prefix slash", "    policy: round_robin", "    policy: round_robin\n    discovery: [{etcd: {endpoints: [http://a:1], prefix: p}}]", `c.yaml:13: pools.api.discovery[0].etcd.prefix: "p": a prefix starts with /`, ""},
		{"etcd bad endpoint", "    policy: round_robin", "    policy: round_robin\n    discovery: [{etcd: {endpoints: [\"ftp://a:1\"], prefix: /p}}]", `pools.api.discovery[0].etcd.endpoints[0]: "ftp://a:1": the scheme must be http or https`, ""},
		{"unknown discovery module", "    policy: round_robin", "    policy: round_robin\n    discovery: [{module: consul}]", `pools.api.discovery[0].module: unknown discovery module "consul" (built in: etcd)`, ""},
		{"missing discovery file", "    policy: round_robin", "    policy: round_robin\n    discovery: [{file: nope.yaml}]", `pools.api.discovery[0].file: stat nope.yaml: no such file or directory`, ""},
		{"unknown fallback", "    policy: round_robin", "    policy: round_robin\n    fallback: first", `c.yaml:13: pools.api.fallback: "first" is not a fallback: use round_robin, random, hash or none`, ""},
		{"unknown upstream protocol", "    policy: round_robin", "    policy: round_robin\n    upstream_protocol: h2", `c.yaml:13: pools.api.upstream_protocol: "h2" is not an upstream protocol: use http1 or h2c`, ""},
		{"pick budget too short", "timeouts:", "wasm: {pick_budget: 100us}\ntimeouts:", `c.yaml:23: wasm.pick_budget: 100µs is out of range 1ms to 1m0s`, ""},
		{"negative call budget", "timeouts:", "wasm: {call_budget: -1s}\ntimeouts:", `c.yaml:23: wasm.call_budget: -1s is out of range 1ms to 1m0s`, ""},
		{"init budget too long", "timeouts:", "wasm: {init_budget: 2h}\ntimeouts:", `c.yaml:23: wasm.init_budget: 2h0m0s is out of range 1ms to 1m0s`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(good, tt.old, tt.new, 1)
			if src == good {
				t.Fatalf("case does not change the configuration: %q not found", tt.old)
			}
			_, err := Parse([]byte(src), "c.yaml", ".")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.wantExtra) {
				t.Fatalf("error:\n%v\nwant it to contain %q and %q", err, tt.want, tt.wantExtra)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	src := strings.NewReplacer("address: 10.0.0.1:80", "address: nope", "        pool: api", "        pool: nope", "weight: 5", "weight: 9999999").Replace(good)
	_, err := Parse([]byte(src), "c.yaml", ".")
	es, ok := err.(Errors)
	if !ok || len(es) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i := 1; i < len(es); i++ {
		if es[i].Line < es[i-1].Line {
			t.Fatalf("errors not in file order: %v", err)
		}
	}
}

func TestParseStructural(t *testing.T) {
	tests := map[string]string{
		"":                "empty configuration",
		"# nothing\n":     "empty configuration",
		"- a\n- b\n":      "must be a mapping",
		"listeners: []\n": "at least one listener",
		"pools: {}\nlisteners:\n  - address: :80\n":                             "at least one pool",
		"listeners: []\npools: {}\n---\nx: 1\n":                                 "more than one YAML document",
		"listeners:\n  - address: :80\n    routes: [{pool: a}]\npools:\n  a:\n": `pool "a" is empty`,
	}
	for src, want := range tests {
		_, err := Parse([]byte(src), "c.yaml", ".")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", src, err, want)
		}
	}
}

func TestReadModule(t *testing.T) {
	dir := t.TempDir()
	src := strings.Replace(good, "policy: round_robin", "policy: policies/mine.wasm", 1)
	c, err := Parse([]byte(src), filepath.Join(dir, "c.yaml"), dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ReadModule("api")
	if err == nil || !strings.Contains(err.Error(), "c.yaml:12: pools.api.policy: module "+filepath.Join(dir, "policies/mine.wasm")+": no such file or directory") {
		t.Fatalf("err = %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "policies"), 0o755)
	os.WriteFile(filepath.Join(dir, "policies/mine.wasm"), []byte("\x00asm"), 0o644)
	if b, err := c.ReadModule("api"); err != nil || string(b) != "\x00asm" {
		t.Fatalf("read: %q, %v", b, err)
	}
	if b, err := c.ReadModule("web"); err != nil || len(b) < 1000 {
		t.Fatalf("built-in: %d bytes, %v", len(b), err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml: no such file") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("listeners: [{address: ':0', routes: [{pool: a}]}]\npools: {a: {backends: [{address: 'x:1'}]}}"))
	f.Add([]byte("pools: &a {b: *a}"))
	f.Add([]byte("listeners:\n  - address: [1,2]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml", ".")
		if err != nil {
			if es, ok := err.(Errors); !ok || len(es) == 0 {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		// A configuration that parses is complete: every route's pool
		// exists and every backend has a weight.
		for _, l := range c.Listeners {
			for _, r := range l.Routes {
				if c.Pools[r.Pool] == nil {
					t.Fatalf("route to missing pool %q accepted", r.Pool)
				}
			}
		}
		for _, p := range c.Pools {
			for _, b := range p.Backends {
				if b.Weight < 1 || b.Weight > MaxWeight {
					t.Fatalf("weight %d accepted", b.Weight)
				}
			}
			_ = p.PolicyConfigJSON()
		}
	})
}

// A backends file is untrusted input of a discovery source: any bytes give
// backends that pass the checks, or a located error; never a panic.
func FuzzParseBackendsFile(f *testing.F) {
	f.Add([]byte("backends:\n  - {address: 10.0.0.1:80, weight: 2, zone: a, meta: {k: v}}\n"))
	f.Add([]byte("backends: []\n"))
	f.Add([]byte("backends:\n  - {address: x}\n"))
	f.Add([]byte("- a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		bs, err := ParseBackendsFile(data, "b.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "b.yaml") {
				t.Fatalf("error without its file: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, b := range bs {
			if checkBackendAddress(b.Address) != nil || b.Weight < 1 || b.Weight > MaxWeight || seen[b.Address] {
				t.Fatalf("accepted %+v", b)
			}
			seen[b.Address] = true
		}
	})
}

func TestParseBackendsFile(t *testing.T) {
	bs, err := ParseBackendsFile([]byte("backends:\n  - {address: 10.0.0.1:80}\n  - {address: 10.0.0.2:80, weight: 3}\n"), "b.yaml")
	if err != nil || len(bs) != 2 || bs[0].Weight != 1 || bs[1].Weight != 3 {
		t.Fatalf("%+v %v", bs, err)
	}
	for in, want := range map[string]string{
		"backends:\n  - {address: 10.0.0.1:80, wieght: 3}\n":                  `b.yaml:2: unknown field "wieght" in a backend`,
		"backends:\n  - {address: 10.0.0.1:80}\n  - {address: 10.0.0.1:80}\n": `b.yaml:3: backends[1].address: backend 10.0.0.1:80 is listed as backends[0] too`,
		"backends: [\n": "b.yaml",
		"- 1\n":         "b.yaml:1: a backends file is a mapping with a backends list",
	} {
		if _, err := ParseBackendsFile([]byte(in), "b.yaml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func TestTCPListeners(t *testing.T) {
	base := "pools:\n  db:\n    backends: [{address: 10.0.0.1:5432}]\nlisteners:\n"
	cfg, err := Parse([]byte(base+"  - {address: 127.0.0.1:5432, mode: tcp, pool: db}\n"), "c.yaml", ".")
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Listeners[0]
	if l.Hash != "client_ip" || l.IdleTimeout != DefaultTCPIdleTimeout || l.MaxConnections != DefaultMaxConnections {
		t.Fatalf("defaults: %+v", l)
	}
	for in, want := range map[string]string{
		"  - {address: 127.0.0.1:5432, mode: tcp}\n":                                 "c.yaml:5: listeners[0].pool: pool is required for mode tcp",
		"  - {address: 127.0.0.1:5432, mode: tcp, pool: web}\n":                      `listeners[0].pool: unknown pool "web" (pools: db)`,
		"  - {address: 127.0.0.1:5432, mode: tcp, pool: db, hash: source}\n":         `listeners[0].hash: "source": use client_ip, client_ip_port or none`,
		"  - {address: 127.0.0.1:5432, mode: tcp, pool: db, routes: [{pool: db}]}\n": "listeners[0].routes: a tcp listener has no routes",
		"  - {address: 127.0.0.1:5432, mode: udp, pool: db}\n":                       `listeners[0].mode: "udp": use http or tcp`,
		"  - {address: 127.0.0.1:5432, pool: db, routes: [{pool: db}]}\n":            "listeners[0]: pool, hash, max_connections and idle_timeout are for mode tcp",
		"  - {address: 127.0.0.1:5432, mode: tcp, pool: db, idle_timeout: 10ms}\n":   "listeners[0].idle_timeout: 10ms is shorter than 1s",
		"  - {address: 127.0.0.1:5432, mode: tcp, pool: db, max_connections: -1}\n":  "listeners[0].max_connections: -1 is out of range",
	} {
		if _, err := Parse([]byte(base+in), "c.yaml", "."); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}
