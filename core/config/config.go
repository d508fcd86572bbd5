// Package config decodes and checks wproxy's configuration file.
//
// A configuration goes through a fixed sequence: decode strictly (an unknown
// field is an error), apply defaults, validate (every problem is reported,
// each with its file, line and field path), and check that the module files
// it names can be read. Compiling and initialising modules is the caller's
// step (core/server), which reports through the same Error type.
//
// The field reference lives in docs/config.md; every field below states its
// default, and the zero value of a field means its default.
package config

import (
	"net"
	"net/netip"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration.
type Config struct {
	// Listeners accept client connections. At least one.
	Listeners []Listener `yaml:"listeners"`
	// Pools are named groups of backends with a balancing policy. The map
	// key is the pool's name: lowercase letters, digits, '_' and '-'.
	Pools map[string]*Pool `yaml:"pools"`
	// Timeouts apply to every listener and pool.
	Timeouts Timeouts `yaml:"timeouts"`
	// Limits protect every listener from overload and bad clients.
	Limits Limits `yaml:"limits"`
	// Wasm configures the WebAssembly runtime that runs the modules.
	Wasm Wasm `yaml:"wasm"`
	// Admin configures the admin API.
	Admin Admin `yaml:"admin"`
	// ReloadOnChange reloads the configuration when its file changes
	// (checked every 2 s), besides SIGHUP and POST /reload. Default false.
	ReloadOnChange bool `yaml:"reload_on_change"`

	// File is the path the configuration was read from, for messages.
	File string `yaml:"-"`
	// Dir is the directory relative module paths are resolved against.
	Dir string `yaml:"-"`

	root *yaml.Node // the document, for the line numbers of messages
}

// Listener is an HTTP listener (HTTP/1.1; HTTP/2 and HTTP/3 with TLS, or
// h2c) and its routes, or a tcp listener and its pool.
type Listener struct {
	// Name identifies the listener in logs. Default "listener-N" (N from 0
	// in file order). Unique.
	Name string `yaml:"name"`
	// Address is host:port to listen on; an empty host means every
	// interface, port 0 a free port. Required.
	Address string `yaml:"address"`
	// Mode is http (default) or tcp: a tcp listener balances connections
	// over Pool and copies their bytes both ways (layer 4).
	Mode string `yaml:"mode"`
	// Routes send requests to pools (http). At least one. The most
	// specific route wins: an exact host before a wildcard host before any
	// host, then the longest path prefix.
	Routes []Route `yaml:"routes"`
	// Pool receives a tcp listener's connections. Required for tcp.
	Pool string `yaml:"pool"`
	// Hash is a tcp listener's hash key: client_ip (default),
	// client_ip_port or none (the policy balances without a key).
	Hash string `yaml:"hash"`
	// MaxConnections bounds a tcp listener's connections; beyond it the
	// listener waits before accepting. Default limits.max_connections.
	MaxConnections int `yaml:"max_connections"`
	// IdleTimeout closes a tcp connection idle both ways this long.
	// Default 5m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// TLS serves an http listener over TLS, with HTTP/2 and HTTP/1.1 chosen
	// by ALPN. Default none (plain HTTP/1.1).
	TLS *TLS `yaml:"tls"`
	// H2C lets a plain http listener accept HTTP/2 cleartext with prior
	// knowledge besides HTTP/1.1.
	H2C bool `yaml:"h2c"`
	// HTTP3 also serves HTTP/3 over QUIC on the UDP port of the same number
	// (tls only), advertised by Alt-Svc on the TLS responses.
	HTTP3 bool `yaml:"http3"`
}

// TLS is a listener's certificates: CertFile and KeyFile, and any number of
// Certificates besides. The client's server name (SNI) picks among them by
// the names they are valid for; the first is the default.
type TLS struct {
	// CertFile is a PEM certificate chain, with KeyFile.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"key_file"`
	// Certificates are more certificate and key pairs.
	Certificates []CertPair `yaml:"certificates"`
}

// CertPair is a certificate chain and its private key, PEM files.
type CertPair struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Pairs returns the TLS certificate pairs in order, their paths resolved
// against dir.
func (t *TLS) Pairs(dir string) []CertPair {
	if t == nil {
		return nil
	}
	resolve := func(p string) string {
		if p != "" && !filepath.IsAbs(p) && dir != "" {
			return filepath.Join(dir, p)
		}
		return p
	}
	var ps []CertPair
	if t.CertFile != "" || t.KeyFile != "" {
		ps = append(ps, CertPair{resolve(t.CertFile), resolve(t.KeyFile)})
	}
	for _, c := range t.Certificates {
		ps = append(ps, CertPair{resolve(c.CertFile), resolve(c.KeyFile)})
	}
	return ps
}

// Pool upstream protocols.
const (
	UpstreamHTTP1 = "http1"
	UpstreamH2C   = "h2c"
)

// Listener modes.
const (
	ModeHTTP = "http"
	ModeTCP  = "tcp"
)

// DefaultTCPIdleTimeout closes idle tcp connections.
const DefaultTCPIdleTimeout = 5 * time.Minute

// Route matches requests by host and path prefix.
type Route struct {
	// Host matches the request's host (port ignored, case-insensitive):
	// "example.com" exactly, "*.example.com" any subdomain. Default: any.
	Host string `yaml:"host"`
	// PathPrefix matches paths that start with it. Default "/".
	PathPrefix string `yaml:"path_prefix"`
	// Pool names the pool that serves matching requests. Required.
	Pool string `yaml:"pool"`
}

// Pool is a set of backends and the policy that balances over them.
type Pool struct {
	// Policy is the balancing module: the name of a built-in module
	// ("round_robin") or the path of a .wasm file, relative to the
	// configuration file's directory. Default "round_robin".
	Policy string `yaml:"policy"`
	// PolicyConfig is handed to the module's init call, as JSON. Free-form;
	// the module documents its fields. Default: none (the module gets {}).
	PolicyConfig any `yaml:"policy_config"`
	// HashKey selects what a request's hash is computed from, for policies
	// that hash: a list of "header:NAME", "cookie:NAME", "query:NAME",
	// "client_ip", "host", "path". Several sources are combined; the key is
	// present only when every source is. Default: none.
	HashKey []string `yaml:"hash_key"`
	// FetchAllow lists host:port destinations the policy module may fetch
	// from besides the pool's own backends (such as a service registry).
	// Default: none.
	FetchAllow []string `yaml:"fetch_allow"`
	// Fallback answers a request when the balancing module fails (traps,
	// runs past its budget, answers nonsense, or is suspended):
	// round_robin (default), random, hash (the request's hash_key modulo
	// the backends, round robin without a key) or none (503).
	Fallback string `yaml:"fallback"`
	// Backends are the pool's servers. At least one.
	Backends []Backend `yaml:"backends"`
	// Discovery lists sources of more backends, merged with Backends.
	Discovery []Source `yaml:"discovery"`
	// MaxIdleConns bounds the idle upstream connections kept per backend.
	// Default 64.
	MaxIdleConns int `yaml:"max_idle_conns"`
	// IdleConnTimeout closes an upstream connection idle for this long.
	// Keep it below the backends' own keep-alive timeout. Default 60s.
	IdleConnTimeout time.Duration `yaml:"idle_conn_timeout"`
	// UpstreamProtocol is how requests reach the backends: http1 (default,
	// HTTP/1.1) or h2c (HTTP/2 cleartext with prior knowledge, as gRPC
	// servers speak without TLS; trailers pass through).
	UpstreamProtocol string `yaml:"upstream_protocol"`
	// Health decides which backends receive requests.
	Health Health `yaml:"health"`

	hashKey []HashSource // parsed HashKey
}

// Health configures a pool's health checks.
type Health struct {
	// Active probes each backend; absent: no active checks.
	Active *ActiveHealth `yaml:"active"`
	// Passive watches proxied requests; on by default.
	Passive PassiveHealth `yaml:"passive"`
	// PanicThreshold: when fewer than this percentage of the backends are
	// healthy, the health check is presumed broken and every backend gets
	// traffic. 1 to 100; default 50.
	PanicThreshold int `yaml:"panic_threshold"`
	// DegradedWeight is the percentage of its weight a degraded backend
	// keeps, 1 to 100. Default 25.
	DegradedWeight int `yaml:"degraded_weight"`
}

// ActiveHealth configures active checks: a probe of each backend per
// interval.
type ActiveHealth struct {
	// Path is requested with GET. Default "/health".
	Path string `yaml:"path"`
	// Interval between two probes of a backend. Default 5s.
	Interval time.Duration `yaml:"interval"`
	// Jitter varies each interval by up to this percentage either way,
	// 0 to 50. Default 10.
	Jitter int `yaml:"jitter"`
	// Timeout: a probe without an answer by then fails. Less than the
	// interval. Default 1s.
	Timeout time.Duration `yaml:"timeout"`
	// ExpectedStatuses mean healthy. Default [200].
	ExpectedStatuses []int `yaml:"expected_statuses"`
	// Rise is how many good probes in a row bring a backend back. Default 2.
	Rise int `yaml:"rise"`
	// Fall is how many bad probes in a row take it out. Default 3.
	Fall int `yaml:"fall"`
	// Headers are the response headers handed to the evaluator. Default
	// none.
	Headers []string `yaml:"headers"`
	// BodyBytes is how much of the body the evaluator sees, up to 65536.
	// Default 1024.
	BodyBytes int `yaml:"body_bytes"`
	// Evaluator judges each probe: a built-in evaluator's name or a .wasm
	// file. Default "health_status" (expected status: healthy; other
	// status or none: unhealthy).
	Evaluator string `yaml:"evaluator"`
	// EvaluatorConfig is handed to the evaluator's init as JSON.
	EvaluatorConfig any `yaml:"evaluator_config"`
}

// PassiveHealth configures passive checks on proxied requests.
type PassiveHealth struct {
	// Disable turns passive checks off. Default false.
	Disable bool `yaml:"disable"`
	// ConsecutiveFailures eject a backend: refused or failed connections,
	// timeouts, broken responses and, unless Ignore5xx, 5xx answers.
	// Default 5.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// Ignore5xx keeps 5xx answers from counting as failures. Default false.
	Ignore5xx bool `yaml:"ignore_5xx"`
	// BaseEjection is the first ejection's length; it doubles each time
	// the backend is ejected again soon after. Default 30s.
	BaseEjection time.Duration `yaml:"base_ejection"`
	// MaxEjection caps an ejection. Default 5m.
	MaxEjection time.Duration `yaml:"max_ejection"`
	// MaxEjectedPercent bounds the share of backends ejected at once,
	// 1 to 100. Default 50.
	MaxEjectedPercent int `yaml:"max_ejected_percent"`
}

// Backend is one server of a pool.
type Backend struct {
	// Address is host:port of the server. Required.
	Address string `yaml:"address"`
	// Weight is the backend's share relative to the pool's other backends,
	// 1 to 1000000. Default 1.
	Weight uint32 `yaml:"weight"`
	// Zone is a locality label that policies may use. Default: none.
	Zone string `yaml:"zone"`
	// Meta is free-form metadata handed to the policy. Default: none.
	Meta map[string]string `yaml:"meta"`
}

// Timeouts bound every phase of a request.
type Timeouts struct {
	// Connect bounds dialing a backend; on expiry the request gets 502.
	// Default 5s.
	Connect time.Duration `yaml:"connect"`
	// ResponseHeader bounds the wait for a backend's response header after
	// the request was sent; on expiry the request gets 504. Default 60s.
	ResponseHeader time.Duration `yaml:"response_header"`
	// ClientHeader bounds reading a request's header from a client.
	// Default 10s.
	ClientHeader time.Duration `yaml:"client_header"`
	// ClientBody bounds the pause between two reads of a request body from
	// a client (not the whole upload). Default 60s.
	ClientBody time.Duration `yaml:"client_body"`
	// ClientIdle closes a keep-alive client connection idle for this long.
	// Default 120s.
	ClientIdle time.Duration `yaml:"client_idle"`
	// Shutdown bounds the graceful drain on SIGTERM: in-flight requests get
	// this long to finish before connections are closed. Default 30s.
	Shutdown time.Duration `yaml:"shutdown"`
}

// Limits bound what a client may hold or send, on every listener.
type Limits struct {
	// MaxConnections bounds the client connections a listener holds at
	// once; beyond it the listener stops accepting until one closes (new
	// connections wait in the kernel's backlog). Default 10000.
	MaxConnections int `yaml:"max_connections"`
	// MaxHeaderBytes bounds a request's line and header; a bigger one is
	// answered 431. Default 65536 (64 KiB), 1024 to 16 MiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxRequestLineBytes bounds the request line (method, target,
	// version); a longer one is answered 414. Default 8192, 256 to
	// MaxHeaderBytes.
	MaxRequestLineBytes int `yaml:"max_request_line_bytes"`
}

// Admin configures the admin API's listener.
type Admin struct {
	// Address is host:port of the admin listener; empty: no admin API. An
	// empty host (":9901") means 127.0.0.1. Default: none.
	Address string `yaml:"address"`
	// Token is the bearer token every admin request but GET /healthz must
	// carry (Authorization: Bearer TOKEN). Required, at least 16
	// characters, when Address is not a loopback address. Default: none.
	Token string `yaml:"token"`
}

// ListenAddress returns the address the admin listener binds: Address,
// with 127.0.0.1 for an empty host.
func (a Admin) ListenAddress() string {
	host, port, err := net.SplitHostPort(a.Address)
	if err != nil || host != "" {
		return a.Address
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// Loopback reports whether the admin listener binds a loopback address.
func (a Admin) Loopback() bool {
	host, _, err := net.SplitHostPort(a.ListenAddress())
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Wasm configures the WebAssembly runtime.
type Wasm struct {
	// CacheDir keeps compiled modules across restarts. "off" disables the
	// disk cache. Default: the user cache directory's wproxy/wasm
	// ($XDG_CACHE_HOME/wproxy/wasm or ~/.cache/wproxy/wasm).
	CacheDir string `yaml:"cache_dir"`
	// MaxMemoryMB caps each module instance's memory, in MiB (1 to 4096).
	// Default 64.
	MaxMemoryMB int `yaml:"max_memory_mb"`
	// PickBudget bounds each balancing decision of a module: a pick still
	// running then is abandoned and the pool's fallback (round robin)
	// answers. Default 20ms.
	PickBudget time.Duration `yaml:"pick_budget"`
	// CallBudget bounds every other call into a module (endpoint updates,
	// timers, health evaluations). Default 1s.
	CallBudget time.Duration `yaml:"call_budget"`
	// InitBudget bounds a module instance's start and init. Default 5s.
	InitBudget time.Duration `yaml:"init_budget"`
}

// Defaults.
const (
	DefaultMaxConnections      = 10000
	DefaultMaxHeaderBytes      = 64 << 10
	DefaultMaxRequestLineBytes = 8 << 10

	DefaultPolicy           = "round_robin"
	DefaultFallback         = "round_robin"
	DefaultUpstreamProtocol = UpstreamHTTP1
	DefaultWeight           = 1
	MaxWeight               = 1_000_000
	DefaultMaxIdleConns     = 64
	DefaultIdleConnTimeout  = 60 * time.Second
	DefaultConnect          = 5 * time.Second
	DefaultResponseHeader   = 60 * time.Second
	DefaultClientHeader     = 10 * time.Second
	DefaultClientBody       = 60 * time.Second
	DefaultClientIdle       = 120 * time.Second
	DefaultShutdown         = 30 * time.Second
	DefaultMaxMemoryMB      = 64
	DefaultPickBudget       = 20 * time.Millisecond
	DefaultCallBudget       = time.Second
	DefaultInitBudget       = 5 * time.Second
	MaxBudget               = time.Minute

	DefaultPanicThreshold      = 50
	DefaultDegradedWeight      = 25
	DefaultHealthPath          = "/health"
	DefaultHealthInterval      = 5 * time.Second
	DefaultHealthJitter        = 10
	DefaultHealthTimeout       = time.Second
	DefaultRise                = 2
	DefaultFall                = 3
	DefaultBodyBytes           = 1024
	DefaultEvaluator           = "health_status"
	DefaultConsecutiveFailures = 5
	DefaultBaseEjection        = 30 * time.Second
	DefaultMaxEjection         = 5 * time.Minute
	DefaultMaxEjectedPercent   = 50
)

// HashSource is one part of a pool's hash key.
type HashSource struct {
	Kind string // "header", "cookie", "query", "client_ip", "host" or "path"
	Name string // the header, cookie or query parameter name
}

// HashSources returns the parsed hash_key of a validated pool.
func (p *Pool) HashSources() []HashSource { return p.hashKey }
