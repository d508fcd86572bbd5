package config

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	policieswasm "github.com/wproxy/wproxy/policies-wasm"
)

// Error is one problem in a configuration, located by file, line and the path
// of the field (such as pools.api.backends[1].address).
type Error struct {
	File string
	Line int // 0 when unknown
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one configuration, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// MaxFileSize bounds a configuration file.
const MaxFileSize = 4 << 20

// Load reads, decodes and validates the configuration file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, MaxFileSize)
	}
	return Parse(data, path, filepath.Dir(path))
}

// Parse decodes and validates a configuration; file names it in messages and
// dir is where relative module paths resolve. The error, if any, is Errors.
func Parse(data []byte, file, dir string) (*Config, error) {
	c := &Config{File: file, Dir: dir}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{yamlError(file, err)}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, Errors{{File: file, Msg: "empty configuration: it needs listeners and pools"}}
	}
	if root.Content[0].Kind != yaml.MappingNode {
		return nil, Errors{{File: file, Line: root.Content[0].Line, Msg: "the configuration must be a mapping of listeners, pools, timeouts and wasm"}}
	}
	c.root = root.Content[0]
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			es := make(Errors, 0, len(te.Errors))
			for _, msg := range te.Errors {
				es = append(es, typeError(file, msg))
			}
			return nil, es
		}
		return nil, Errors{yamlError(file, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, Errors{{File: file, Line: extra.Line, Msg: "more than one YAML document; a configuration is one document"}}
	}
	c.applyDefaults()
	v := &validator{c: c}
	v.validate()
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool { return v.errs[i].Line < v.errs[j].Line })
		return nil, v.errs
	}
	return c, nil
}

var (
	yamlLine      = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	typeLine      = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField  = regexp.MustCompile(`^field (\S+) not found in type config\.(\w+)$`)
	cannotDecode  = regexp.MustCompile(`^cannot unmarshal (\S+) (.*) into (\S+)$`)
	typeNameWords = map[string]string{
		"Config": "the top level", "Listener": "a listener", "Route": "a route", "Pool": "a pool",
		"Backend": "a backend", "Timeouts": "timeouts", "Limits": "limits", "Wasm": "wasm", "Admin": "admin",
		"Health": "health", "ActiveHealth": "active health checks", "PassiveHealth": "passive health checks",
		"TLS": "a listener's tls", "CertPair": "a certificate", "Source": "a discovery source", "EtcdSource": "an etcd source", "PluginSource": "a plugin source", "BackendsFile": "a backends file",
	}
	typeByName = map[string]reflect.Type{
		"Config": reflect.TypeFor[Config](), "Listener": reflect.TypeFor[Listener](), "Route": reflect.TypeFor[Route](),
		"Pool": reflect.TypeFor[Pool](), "Backend": reflect.TypeFor[Backend](), "Timeouts": reflect.TypeFor[Timeouts](),
		"Limits": reflect.TypeFor[Limits](), "Wasm": reflect.TypeFor[Wasm](), "Admin": reflect.TypeFor[Admin](), "Health": reflect.TypeFor[Health](),
		"ActiveHealth": reflect.TypeFor[ActiveHealth](), "PassiveHealth": reflect.TypeFor[PassiveHealth](),
		"TLS": reflect.TypeFor[TLS](), "CertPair": reflect.TypeFor[CertPair](), "Source": reflect.TypeFor[Source](), "EtcdSource": reflect.TypeFor[EtcdSource](), "PluginSource": reflect.TypeFor[PluginSource](), "BackendsFile": reflect.TypeFor[BackendsFile](),
	}
)

func yamlError(file string, err error) *Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Msg: "not valid YAML: " + m[2]}
	}
	return &Error{File: file, Msg: "not valid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// typeError rewrites one of yaml's decoding messages in the words of this
// file format.
func typeError(file, msg string) *Error {
	e := &Error{File: file, Msg: msg}
	if m := typeLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	if m := unknownField.FindStringSubmatch(e.Msg); m != nil {
		e.Msg = fmt.Sprintf("unknown field %q in %s (known fields: %s)", m[1], typeNameWords[m[2]], strings.Join(fieldNames(typeByName[m[2]]), ", "))
	} else if m := cannotDecode.FindStringSubmatch(e.Msg); m != nil {
		want := m[3]
		switch want {
		case "time.Duration":
			want = "a duration such as 5s or 1m30s"
		case "uint32", "int":
			want = "a whole number"
		case "[]config.Listener", "[]config.Route", "[]config.Backend", "[]string":
			want = "a list"
		case "map[string]*config.Pool", "map[string]string":
			want = "a mapping"
		default:
			if strings.HasPrefix(want, "config.") {
				want = "a mapping"
			}
		}
		got := map[string]string{"!!str": "the string", "!!int": "the number", "!!float": "the number",
			"!!bool": "the boolean", "!!map": "a mapping", "!!seq": "a list", "!!null": "null"}[m[1]]
		if got == "" {
			got = strings.Trim(m[1], "!")
		}
		val := strings.ReplaceAll(m[2], "`", `"`)
		if m[1] != "!!str" {
			val = strings.Trim(val, `"`)
		}
		if m[1] == "!!map" || m[1] == "!!seq" {
			val = ""
		} else {
			val = " " + val
		}
		e.Msg = fmt.Sprintf("%s%s where %s is expected", got, val, want)
	}
	return e
}

func fieldNames(t reflect.Type) []string {
	if t == nil {
		return nil
	}
	var names []string
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("yaml"); tag != "" && tag != "-" {
			names = append(names, strings.Split(tag, ",")[0])
		}
	}
	return names
}

func (c *Config) applyDefaults() {
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Name == "" {
			l.Name = "listener-" + strconv.Itoa(i)
		}
		if l.Mode == "" {
			l.Mode = ModeHTTP
		}
		if l.Mode == ModeTCP {
			if l.Hash == "" {
				l.Hash = "client_ip"
			}
			if l.IdleTimeout == 0 {
				l.IdleTimeout = DefaultTCPIdleTimeout
			}
		}
		for j := range l.Routes {
			if l.Routes[j].PathPrefix == "" {
				l.Routes[j].PathPrefix = "/"
			}
			l.Routes[j].Host = strings.ToLower(l.Routes[j].Host)
		}
	}
	for _, p := range c.Pools {
		if p == nil {
			continue
		}
		if p.Policy == "" {
			p.Policy = DefaultPolicy
		}
		if p.Fallback == "" {
			p.Fallback = DefaultFallback
		}
		if p.UpstreamProtocol == "" {
			p.UpstreamProtocol = DefaultUpstreamProtocol
		}
		for i := range p.Discovery {
			c.applySourceDefaults(&p.Discovery[i])
		}
		if p.MaxIdleConns == 0 {
			p.MaxIdleConns = DefaultMaxIdleConns
		}
		if p.IdleConnTimeout == 0 {
			p.IdleConnTimeout = DefaultIdleConnTimeout
		}
		for i := range p.Backends {
			if p.Backends[i].Weight == 0 {
				p.Backends[i].Weight = DefaultWeight
			}
		}
		h := &p.Health
		setInt(&h.PanicThreshold, DefaultPanicThreshold)
		setInt(&h.DegradedWeight, DefaultDegradedWeight)
		if a := h.Active; a != nil {
			if a.Path == "" {
				a.Path = DefaultHealthPath
			}
			setDefault(&a.Interval, DefaultHealthInterval)
			setInt(&a.Jitter, DefaultHealthJitter)
			if a.Timeout == 0 && a.Interval > 0 {
				// A short interval shortens the default timeout with it.
				a.Timeout = min(DefaultHealthTimeout, a.Interval/2)
			}
			if len(a.ExpectedStatuses) == 0 {
				a.ExpectedStatuses = []int{200}
			}
			setInt(&a.Rise, DefaultRise)
			setInt(&a.Fall, DefaultFall)
			setInt(&a.BodyBytes, DefaultBodyBytes)
			if a.Evaluator == "" {
				a.Evaluator = DefaultEvaluator
			}
		}
		ps := &h.Passive
		setInt(&ps.ConsecutiveFailures, DefaultConsecutiveFailures)
		setDefault(&ps.BaseEjection, DefaultBaseEjection)
		setDefault(&ps.MaxEjection, DefaultMaxEjection)
		setInt(&ps.MaxEjectedPercent, DefaultMaxEjectedPercent)
	}
	t := &c.Timeouts
	setDefault(&t.Connect, DefaultConnect)
	setDefault(&t.ResponseHeader, DefaultResponseHeader)
	setDefault(&t.ClientHeader, DefaultClientHeader)
	setDefault(&t.ClientBody, DefaultClientBody)
	setDefault(&t.ClientIdle, DefaultClientIdle)
	setDefault(&t.Shutdown, DefaultShutdown)
	lim := &c.Limits
	setInt(&lim.MaxConnections, DefaultMaxConnections)
	setInt(&lim.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setInt(&lim.MaxRequestLineBytes, min(DefaultMaxRequestLineBytes, lim.MaxHeaderBytes))
	for i := range c.Listeners {
		if l := &c.Listeners[i]; l.Mode == ModeTCP && l.MaxConnections == 0 {
			l.MaxConnections = lim.MaxConnections
		}
	}
	if c.Wasm.MaxMemoryMB == 0 {
		c.Wasm.MaxMemoryMB = DefaultMaxMemoryMB
	}
	setDefault(&c.Wasm.PickBudget, DefaultPickBudget)
	setDefault(&c.Wasm.CallBudget, DefaultCallBudget)
	setDefault(&c.Wasm.InitBudget, DefaultInitBudget)
	if c.Wasm.CacheDir == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			c.Wasm.CacheDir = filepath.Join(dir, "wproxy", "wasm")
		} else {
			c.Wasm.CacheDir = "off"
		}
	}
}

func setInt(v *int, def int) {
	if *v == 0 {
		*v = def
	}
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// PolicyConfigJSON returns the pool's policy_config as the JSON handed to the
// module: {} when unset. Validate has checked that it converts.
func (p *Pool) PolicyConfigJSON() []byte {
	b, err := policyJSON(p.PolicyConfig)
	if err != nil {
		return []byte("{}")
	}
	return b
}

func policyJSON(v any) ([]byte, error) {
	if v == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(v)
}

// ModulePath returns the file of a pool's policy when it names a file, and
// "" when it names a built-in module.
func (c *Config) ModulePath(p *Pool) string {
	if !isModulePath(p.Policy) {
		return ""
	}
	if filepath.IsAbs(p.Policy) {
		return p.Policy
	}
	return filepath.Join(c.Dir, p.Policy)
}

// Files returns the configuration file and every module file it names: what
// a change watcher must look at.
func (c *Config) Files() []string {
	files := []string{c.File}
	for _, name := range c.PoolNames() {
		p := c.Pools[name]
		if path := c.ModulePath(p); path != "" {
			files = append(files, path)
		}
		if a := p.Health.Active; a != nil && isModulePath(a.Evaluator) {
			path := a.Evaluator
			if !filepath.IsAbs(path) {
				path = filepath.Join(c.Dir, path)
			}
			files = append(files, path)
		}
	}
	return files
}

func isModulePath(policy string) bool {
	return strings.HasSuffix(policy, ".wasm") || strings.ContainsAny(policy, `/\`)
}

// PoolNames returns the pools' names, sorted.
func (c *Config) PoolNames() []string {
	names := make([]string, 0, len(c.Pools))
	for n := range c.Pools {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// validator collects every problem of a configuration.
type validator struct {
	c    *Config
	errs Errors
}

// errorf records a problem at path, a sequence of mapping keys (string) and
// sequence indexes (int) from the top of the document.
func (v *validator) errorf(path []any, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.c.File, Line: v.c.line(path), Path: pathString(path), Msg: fmt.Sprintf(format, args...)})
}

func pathString(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		case int:
			b.WriteString("[" + strconv.Itoa(p) + "]")
		}
	}
	return b.String()
}

// line finds the line of the node at path, or of its nearest ancestor that
// exists (a missing field is reported at the mapping that lacks it).
func (c *Config) line(path []any) int {
	n := c.root
	if n == nil {
		return 0
	}
	line := n.Line
	for _, p := range path {
		next := child(n, p)
		if next == nil {
			break
		}
		n = next
		line = n.Line
	}
	return line
}

func child(n *yaml.Node, p any) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch p := p.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				if n.Content[i+1].Kind == yaml.ScalarNode && n.Content[i+1].Value == "" {
					return n.Content[i] // null values have no useful line; use the key's
				}
				return n.Content[i+1]
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && p < len(n.Content) {
			return n.Content[p]
		}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

func (v *validator) validate() {
	c := v.c
	if len(c.Listeners) == 0 {
		v.errorf([]any{"listeners"}, "at least one listener is required")
	}
	if len(c.Pools) == 0 {
		v.errorf([]any{"pools"}, "at least one pool is required")
	}
	names := map[string]int{}
	addrs := map[string]int{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		at := []any{"listeners", i}
		if !nameRE.MatchString(l.Name) {
			v.errorf(append(at, "name"), "%q is not a valid name: use lowercase letters, digits, '_' and '-'", l.Name)
		} else if j, dup := names[l.Name]; dup {
			v.errorf(append(at, "name"), "listener name %q is used by listeners[%d] too", l.Name, j)
		} else {
			names[l.Name] = i
		}
		if l.Address == "" {
			v.errorf(append(at, "address"), "address is required (host:port)")
		} else if err := checkListenAddress(l.Address); err != nil {
			v.errorf(append(at, "address"), "%q: %v", l.Address, err)
		} else if j, dup := addrs[l.Address]; dup && !strings.HasSuffix(l.Address, ":0") {
			v.errorf(append(at, "address"), "address %s is used by listeners[%d] too", l.Address, j)
		} else {
			addrs[l.Address] = i
		}
		switch l.Mode {
		case ModeHTTP:
			if len(l.Routes) == 0 {
				v.errorf(append(at, "routes"), "at least one route is required")
			}
			if l.Pool != "" || l.Hash != "" || l.IdleTimeout != 0 || l.MaxConnections != 0 {
				v.errorf(at, "pool, hash, max_connections and idle_timeout are for mode tcp; an http listener has routes")
			}
			v.validateListenerTLS(at, l)
		case ModeTCP:
			if len(l.Routes) > 0 {
				v.errorf(append(at, "routes"), "a tcp listener has no routes: it sends every connection to its pool")
			}
			if l.Pool == "" {
				v.errorf(append(at, "pool"), "pool is required for mode tcp")
			} else if _, ok := c.Pools[l.Pool]; !ok {
				v.errorf(append(at, "pool"), "unknown pool %q (pools: %s)", l.Pool, strings.Join(c.PoolNames(), ", "))
			}
			switch l.Hash {
			case "client_ip", "client_ip_port", "none":
			default:
				v.errorf(append(at, "hash"), "%q: use client_ip, client_ip_port or none", l.Hash)
			}
			if l.MaxConnections < 1 || l.MaxConnections > 1_000_000 {
				v.errorf(append(at, "max_connections"), "%d is out of range 1 to 1000000", l.MaxConnections)
			}
			if l.IdleTimeout < time.Second {
				v.errorf(append(at, "idle_timeout"), "%s is shorter than 1s", l.IdleTimeout)
			}
			if l.TLS != nil || l.H2C || l.HTTP3 {
				v.errorf(at, "tls, h2c and http3 are for mode http; a tcp listener copies bytes (TLS passes through)")
			}
		default:
			v.errorf(append(at, "mode"), "%q: use http or tcp", l.Mode)
		}
		seen := map[[2]string]int{}
		for j, r := range l.Routes {
			rat := append(append([]any{}, at...), "routes", j)
			if r.Pool == "" {
				v.errorf(append(rat, "pool"), "pool is required")
			} else if _, ok := c.Pools[r.Pool]; !ok {
				v.errorf(append(rat, "pool"), "unknown pool %q (pools: %s)", r.Pool, strings.Join(c.PoolNames(), ", "))
			}
			if !strings.HasPrefix(r.PathPrefix, "/") {
				v.errorf(append(rat, "path_prefix"), "%q must start with /", r.PathPrefix)
			}
			if r.Host != "" {
				if err := checkRouteHost(r.Host); err != nil {
					v.errorf(append(rat, "host"), "%q: %v", r.Host, err)
				}
			}
			key := [2]string{r.Host, r.PathPrefix}
			if k, dup := seen[key]; dup {
				v.errorf(rat, "routes[%d] already matches host %q and path_prefix %q", k, r.Host, r.PathPrefix)
			} else {
				seen[key] = j
			}
		}
	}
	for _, name := range c.PoolNames() {
		v.validatePool(name, c.Pools[name])
	}
	t := []struct {
		name string
		d    time.Duration
	}{
		{"connect", c.Timeouts.Connect}, {"response_header", c.Timeouts.ResponseHeader},
		{"client_header", c.Timeouts.ClientHeader}, {"client_body", c.Timeouts.ClientBody},
		{"client_idle", c.Timeouts.ClientIdle}, {"shutdown", c.Timeouts.Shutdown},
	}
	for _, t := range t {
		if t.d < 0 {
			v.errorf([]any{"timeouts", t.name}, "%s is negative", t.d)
		}
	}
	if n := c.Limits.MaxConnections; n < 1 || n > 1_000_000 {
		v.errorf([]any{"limits", "max_connections"}, "%d is out of range 1 to 1000000", n)
	}
	if n := c.Limits.MaxHeaderBytes; n < 1024 || n > 16<<20 {
		v.errorf([]any{"limits", "max_header_bytes"}, "%d is out of range 1024 to 16777216", n)
	}
	if n := c.Limits.MaxRequestLineBytes; n < 256 || n > c.Limits.MaxHeaderBytes {
		v.errorf([]any{"limits", "max_request_line_bytes"}, "%d is out of range 256 to max_header_bytes (%d)", n, c.Limits.MaxHeaderBytes)
	}
	if a := c.Admin.Address; a != "" {
		if err := checkListenAddress(a); err != nil {
			v.errorf([]any{"admin", "address"}, "%q: %v", a, err)
		} else if !c.Admin.Loopback() && c.Admin.Token == "" {
			v.errorf([]any{"admin", "address"}, "%q is not a loopback address: set admin.token, which admin requests must then carry as Authorization: Bearer TOKEN", a)
		}
	}
	if t := c.Admin.Token; t != "" && len(t) < 16 {
		v.errorf([]any{"admin", "token"}, "too short (%d characters): use at least 16", len(t))
	}
	if m := c.Wasm.MaxMemoryMB; m < 1 || m > 4096 {
		v.errorf([]any{"wasm", "max_memory_mb"}, "%d is out of range 1 to 4096", m)
	}
	for _, b := range []struct {
		field string
		d     time.Duration
	}{{"pick_budget", c.Wasm.PickBudget}, {"call_budget", c.Wasm.CallBudget}, {"init_budget", c.Wasm.InitBudget}} {
		if b.d < time.Millisecond || b.d > MaxBudget {
			v.errorf([]any{"wasm", b.field}, "%s is out of range 1ms to %s", b.d, MaxBudget)
		}
	}
}

// validateListenerTLS checks an http listener's tls, h2c and http3: every
// certificate pair exists and loads as a pair.
func (v *validator) validateListenerTLS(at []any, l *Listener) {
	if l.H2C && l.TLS != nil {
		v.errorf(append(at, "h2c"), "h2c is for a plain listener; a tls listener offers HTTP/2 by ALPN")
	}
	if l.HTTP3 && l.TLS == nil {
		v.errorf(append(at, "http3"), "http3 needs tls (QUIC is always encrypted)")
	}
	if l.TLS == nil {
		return
	}
	tat := append(append([]any{}, at...), "tls")
	if l.TLS.CertFile == "" && l.TLS.KeyFile == "" && len(l.TLS.Certificates) == 0 {
		v.errorf(tat, "tls needs a certificate: cert_file and key_file, or certificates")
		return
	}
	check := func(pat []any, cert, key string) {
		if cert == "" || key == "" {
			v.errorf(pat, "cert_file and key_file go together")
			return
		}
		resolve := func(p string) string {
			if !filepath.IsAbs(p) {
				return filepath.Join(v.c.Dir, p)
			}
			return p
		}
		ok := true
		for _, f := range []struct{ field, path string }{{"cert_file", cert}, {"key_file", key}} {
			if _, err := os.Stat(resolve(f.path)); err != nil {
				v.errorf(append(append([]any{}, pat...), f.field), "%v", err)
				ok = false
			}
		}
		if ok {
			if _, err := tls.LoadX509KeyPair(resolve(cert), resolve(key)); err != nil {
				v.errorf(append(append([]any{}, pat...), "cert_file"), "%s and %s do not load as a certificate and its key: %v", cert, key, err)
			}
		}
	}
	if l.TLS.CertFile != "" || l.TLS.KeyFile != "" {
		check(tat, l.TLS.CertFile, l.TLS.KeyFile)
	}
	for j, c := range l.TLS.Certificates {
		check(append(append([]any{}, tat...), "certificates", j), c.CertFile, c.KeyFile)
	}
}

func (v *validator) validatePool(name string, p *Pool) {
	at := []any{"pools", name}
	if !nameRE.MatchString(name) {
		v.errorf(at, "%q is not a valid pool name: use lowercase letters, digits, '_' and '-'", name)
	}
	if p == nil {
		v.errorf(at, "pool %q is empty: it needs backends", name)
		return
	}
	if isModulePath(p.Policy) {
		if !strings.HasSuffix(p.Policy, ".wasm") {
			v.errorf(append(at, "policy"), "%q: a module file must end in .wasm", p.Policy)
		}
	} else if !slices.Contains(policieswasm.NamesOf(policieswasm.KindBalancing), p.Policy) {
		v.errorf(append(at, "policy"), "unknown policy %q: built-in policies are %s, or give the path of a .wasm file", p.Policy, strings.Join(policieswasm.NamesOf(policieswasm.KindBalancing), ", "))
	}
	if p.PolicyConfig != nil {
		if _, ok := p.PolicyConfig.(map[string]any); !ok {
			v.errorf(append(at, "policy_config"), "policy_config must be a mapping")
		} else if _, err := policyJSON(p.PolicyConfig); err != nil {
			v.errorf(append(at, "policy_config"), "cannot be handed to the module as JSON: %v", err)
		}
	}
	switch p.Fallback {
	case "round_robin", "random", "hash", "none":
	default:
		v.errorf(append(at, "fallback"), "%q is not a fallback: use round_robin, random, hash or none", p.Fallback)
	}
	switch p.UpstreamProtocol {
	case UpstreamHTTP1, UpstreamH2C:
	default:
		v.errorf(append(at, "upstream_protocol"), "%q is not an upstream protocol: use http1 or h2c", p.UpstreamProtocol)
	}
	p.hashKey = p.hashKey[:0]
	for i, k := range p.HashKey {
		src, err := parseHashSource(k)
		if err != nil {
			v.errorf(append(at, "hash_key", i), "%q: %v", k, err)
			continue
		}
		p.hashKey = append(p.hashKey, src)
	}
	for i, a := range p.FetchAllow {
		if err := checkBackendAddress(a); err != nil {
			v.errorf(append(at, "fetch_allow", i), "%q: %v", a, err)
		}
	}
	if len(p.Backends) == 0 && len(p.Discovery) == 0 {
		v.errorf(append(at, "backends"), "at least one backend is required (or a discovery source)")
	}
	v.validateBackends(at, p.Backends)
	v.validateDiscovery(at, p.Discovery)
	v.validateHealth(at, &p.Health)
	if p.MaxIdleConns < 0 {
		v.errorf(append(at, "max_idle_conns"), "%d is negative", p.MaxIdleConns)
	}
	if p.IdleConnTimeout < 0 {
		v.errorf(append(at, "idle_conn_timeout"), "%s is negative", p.IdleConnTimeout)
	}
}

// validateBackends checks a list of backends found at at.backends.
func (v *validator) validateBackends(at []any, bs []Backend) {
	seen := map[string]int{}
	for i, b := range bs {
		bat := append(append([]any{}, at...), "backends", i)
		if b.Address == "" {
			v.errorf(append(bat, "address"), "address is required (host:port)")
		} else if err := checkBackendAddress(b.Address); err != nil {
			v.errorf(append(bat, "address"), "%q: %v", b.Address, err)
		} else if j, dup := seen[b.Address]; dup {
			v.errorf(append(bat, "address"), "backend %s is listed as backends[%d] too", b.Address, j)
		} else {
			seen[b.Address] = i
		}
		if b.Weight > MaxWeight {
			v.errorf(append(bat, "weight"), "%d is more than the maximum weight %d", b.Weight, MaxWeight)
		}
	}
}

func (v *validator) validateHealth(pool []any, h *Health) {
	at := append(append([]any{}, pool...), "health")
	percent := func(name string, n int) {
		if n < 1 || n > 100 {
			v.errorf(append(append([]any{}, at...), name), "%d is out of range 1 to 100", n)
		}
	}
	percent("panic_threshold", h.PanicThreshold)
	percent("degraded_weight", h.DegradedWeight)
	if a := h.Active; a != nil {
		aat := append(append([]any{}, at...), "active")
		field := func(name string) []any { return append(append([]any{}, aat...), name) }
		if !strings.HasPrefix(a.Path, "/") {
			v.errorf(field("path"), "%q must start with /", a.Path)
		}
		if a.Interval < 10*time.Millisecond {
			v.errorf(field("interval"), "%s is too short: at least 10ms", a.Interval)
		}
		if a.Timeout <= 0 || a.Timeout >= a.Interval {
			v.errorf(field("timeout"), "%s must be positive and less than the interval %s", a.Timeout, a.Interval)
		}
		if a.Jitter < 0 || a.Jitter > 50 {
			v.errorf(field("jitter"), "%d is out of range 0 to 50", a.Jitter)
		}
		for i, st := range a.ExpectedStatuses {
			if st < 100 || st > 599 {
				v.errorf(append(field("expected_statuses"), i), "%d is not an HTTP status", st)
			}
		}
		if a.Rise < 1 || a.Rise > 100 {
			v.errorf(field("rise"), "%d is out of range 1 to 100", a.Rise)
		}
		if a.Fall < 1 || a.Fall > 100 {
			v.errorf(field("fall"), "%d is out of range 1 to 100", a.Fall)
		}
		if a.BodyBytes < 0 || a.BodyBytes > 65536 {
			v.errorf(field("body_bytes"), "%d is out of range 0 to 65536", a.BodyBytes)
		}
		if isModulePath(a.Evaluator) {
			if !strings.HasSuffix(a.Evaluator, ".wasm") {
				v.errorf(field("evaluator"), "%q: a module file must end in .wasm", a.Evaluator)
			}
		} else if !slices.Contains(policieswasm.NamesOf(policieswasm.KindHealth), a.Evaluator) {
			v.errorf(field("evaluator"), "unknown evaluator %q: built-in evaluators are %s, or give the path of a .wasm file", a.Evaluator, strings.Join(policieswasm.NamesOf(policieswasm.KindHealth), ", "))
		}
		if a.EvaluatorConfig != nil {
			if _, ok := a.EvaluatorConfig.(map[string]any); !ok {
				v.errorf(field("evaluator_config"), "evaluator_config must be a mapping")
			}
		}
	}
	ps := h.Passive
	pat := append(append([]any{}, at...), "passive")
	if ps.ConsecutiveFailures < 1 || ps.ConsecutiveFailures > 1000 {
		v.errorf(append(pat, "consecutive_failures"), "%d is out of range 1 to 1000", ps.ConsecutiveFailures)
	}
	if ps.BaseEjection <= 0 || ps.MaxEjection < ps.BaseEjection {
		v.errorf(append(pat, "max_ejection"), "max_ejection %s must be at least base_ejection %s", ps.MaxEjection, ps.BaseEjection)
	}
	if ps.MaxEjectedPercent < 1 || ps.MaxEjectedPercent > 100 {
		v.errorf(append(pat, "max_ejected_percent"), "%d is out of range 1 to 100", ps.MaxEjectedPercent)
	}
}

// EvaluatorConfigJSON returns the active checks' evaluator_config as JSON
// ({} when unset).
func (a *ActiveHealth) EvaluatorConfigJSON() []byte {
	b, err := policyJSON(a.EvaluatorConfig)
	if err != nil {
		return []byte("{}")
	}
	return b
}

// ReadEvaluator returns the bytes of a pool's health evaluator, located like
// ReadModule.
func (c *Config) ReadEvaluator(pool string) ([]byte, string, error) {
	a := c.Pools[pool].Health.Active
	at := []any{"pools", pool, "health", "active", "evaluator"}
	if !isModulePath(a.Evaluator) {
		b, ok := policieswasm.Lookup(a.Evaluator)
		if !ok {
			return nil, "", c.ErrorAt(fmt.Errorf("unknown evaluator %q", a.Evaluator), at...)
		}
		return b, a.Evaluator, nil
	}
	path := a.Evaluator
	if !filepath.IsAbs(path) {
		path = filepath.Join(c.Dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("module %s: %w", path, pe.Err)
		}
		return nil, "", c.ErrorAt(err, at...)
	}
	return b, path, nil
}

func parseHashSource(s string) (HashSource, error) {
	kind, name, hasName := strings.Cut(s, ":")
	switch kind {
	case "header", "cookie", "query":
		if !hasName || name == "" {
			return HashSource{}, fmt.Errorf("%s needs a name, as in %s:NAME", kind, kind)
		}
		if kind == "header" {
			name = http.CanonicalHeaderKey(name)
		}
		return HashSource{Kind: kind, Name: name}, nil
	case "client_ip", "host", "path":
		if hasName {
			return HashSource{}, fmt.Errorf("%s takes no name", kind)
		}
		return HashSource{Kind: kind}, nil
	}
	return HashSource{}, errors.New("unknown source: use header:NAME, cookie:NAME, query:NAME, client_ip, host or path")
}

func checkListenAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("not host:port")
	}
	if err := checkPort(port, true); err != nil {
		return err
	}
	if host != "" && !validHost(host) {
		return fmt.Errorf("%q is not an IP address or host name", host)
	}
	return nil
}

func checkBackendAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("not host:port")
	}
	if host == "" {
		return errors.New("the host is missing")
	}
	if !validHost(host) {
		return fmt.Errorf("%q is not an IP address or host name", host)
	}
	return checkPort(port, false)
}

func checkPort(port string, zeroOK bool) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

var hostnameRE = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$`)

func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return len(h) <= 253 && hostnameRE.MatchString(h)
}

func checkRouteHost(h string) error {
	if strings.Contains(h, ":") {
		return errors.New("a route host has no port")
	}
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return errors.New(`a wildcard is allowed only as the first label, as in "*.example.com"`)
	}
	if !validHost(name) {
		return errors.New("not a host name")
	}
	return nil
}

// ErrorAt returns err as an Error located at path in the configuration, a
// sequence of mapping keys (string) and sequence indexes (int), for problems
// found after validation, such as a module that fails to compile.
func (c *Config) ErrorAt(err error, path ...any) *Error {
	return &Error{File: c.File, Line: c.line(path), Path: pathString(path), Msg: err.Error()}
}

// ReadModule returns the bytes of a pool's policy module: the embedded
// module for a built-in name, or the file's contents. A missing or
// unreadable file is an Error at the pool's policy field.
func (c *Config) ReadModule(pool string) ([]byte, error) {
	p := c.Pools[pool]
	path := c.ModulePath(p)
	if path == "" {
		b, ok := policieswasm.Lookup(p.Policy)
		if !ok {
			return nil, c.ErrorAt(fmt.Errorf("unknown policy %q", p.Policy), "pools", pool, "policy")
		}
		return b, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("module %s: %w", path, pe.Err)
		}
		return nil, c.ErrorAt(err, "pools", pool, "policy")
	}
	return b, nil
}
