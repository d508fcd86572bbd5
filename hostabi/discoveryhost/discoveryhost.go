// Package discoveryhost is the host side of the discovery ABI,
// wproxy_discovery_v1 (see ../ABI.md): it loads discovery adapters and polls
// them for a pool's backends.
//
// An Adapter runs one instance and makes one call at a time: polls come at
// the source's interval, never on a request's path. The adapter's requests
// go through the host (http), only to the source's endpoints, with TLS
// configured by the host, so the module never holds keys or sockets. An
// instance that traps, exits or runs past its budget is discarded and a new
// one answers the next poll.
package discoveryhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wasmhost"
	"github.com/wproxy/wproxy/hostabi/wire"
)

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
	// MaxBody bounds a response handed to a module.
	MaxBody = 4 << 20
	// maxRequests bounds the requests of one poll.
	maxRequests = 16
)

// Spec is what version 1 of the discovery ABI requires of a module.
var Spec = &wasmhost.Spec{
	Kind:   "discovery (" + hostabi.DiscoveryModuleV1 + ")",
	Marker: hostabi.ExportDiscoveryMarkerV1,
	Exports: map[string]wasmhost.Signature{
		hostabi.ExportDiscoveryMarkerV1: {},
		hostabi.ExportAlloc:             {Params: []api.ValueType{i32}, Results: []api.ValueType{i32}},
		hostabi.ExportDiscoveryInit:     {Params: []api.ValueType{i32, i32}, Results: []api.ValueType{i32}},
		hostabi.ExportDiscoveryPoll:     {Results: []api.ValueType{i32}},
	},
}

// Load compiles a discovery adapter and checks it against Spec.
func Load(ctx context.Context, rt *wasmhost.Runtime, source string, wasm []byte) (*wasmhost.Module, error) {
	if err := rt.DefineHostModule(ctx, hostabi.DiscoveryModuleV1, func(b wazero.HostModuleBuilder) wazero.HostModuleBuilder {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(wasmhost.HostLog), []api.ValueType{i32, i32, i32}, nil).Export(hostabi.ImportLog)
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostHTTP), []api.ValueType{i32, i32}, []api.ValueType{i64}).Export(hostabi.ImportHTTP)
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostHTTPResult), []api.ValueType{i32, i32}, []api.ValueType{i64}).Export(hostabi.ImportHTTPResult)
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostSetEndpoints), []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(hostabi.ImportSetEndpoints)
		return b
	}); err != nil {
		return nil, err
	}
	return rt.Compile(ctx, source, wasm, Spec)
}

// Options configure an Adapter.
type Options struct {
	// Endpoints are the URLs the module may reach: a request goes through
	// only when its scheme, host and port are those of one of them.
	Endpoints []string
	// TLS configures https requests (CA, client certificate); nil uses the
	// system's roots.
	Client *http.Client
	// Timeout caps each request. Default 2s.
	Timeout time.Duration
	// CallBudget bounds a call's own work, to which the requests' time is
	// added. Default 1s.
	CallBudget time.Duration
	Logger     *slog.Logger
}

// Adapter runs one discovery module with one configuration.
type Adapter struct {
	mod     *wasmhost.Module
	config  []byte
	opts    Options
	allowed map[string]bool // scheme://host:port
	client  *http.Client

	mu     sync.Mutex
	inst   *wasmhost.Instance
	closed bool
	// state of the running call, read by the host functions
	result   []byte
	set      []wire.Endpoint
	gotSet   bool
	requests int
	ctx      context.Context
}

// New starts an adapter: it instantiates the module and initialises it with
// config (JSON), so that a configuration error surfaces here.
func New(mod *wasmhost.Module, config []byte, opts Options) (*Adapter, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.CallBudget <= 0 {
		opts.CallBudget = time.Second
	}
	a := &Adapter{mod: mod, config: config, opts: opts, allowed: map[string]bool{}, client: opts.Client}
	if a.client == nil {
		a.client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}}
	}
	for _, e := range opts.Endpoints {
		if key, err := originOf(e); err == nil {
			a.allowed[key] = true
		}
	}
	inst, err := a.instantiate()
	if err != nil {
		return nil, err
	}
	a.inst = inst
	return a, nil
}

// originOf returns scheme://host:port of a URL, with the default port made
// explicit.
func originOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("scheme %q: only http and https", u.Scheme)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", errors.New("no host")
	}
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(host, port), nil
}

func (a *Adapter) instantiate() (*wasmhost.Instance, error) {
	inst, err := a.mod.Instantiate(context.Background(), a.opts.Logger)
	if err != nil {
		return nil, err
	}
	inst.Data = a
	inst.Capture()
	defer inst.Captured()
	fail := func(err error) (*wasmhost.Instance, error) {
		msg := inst.Captured()
		inst.Close()
		return nil, fmt.Errorf("module %s: %s: %w%s", a.mod.Source, hostabi.ExportDiscoveryInit, err, msg)
	}
	ptr, err := inst.WriteGuest(inst.Function(hostabi.ExportAlloc), a.config)
	if err != nil {
		return fail(err)
	}
	stack := [2]uint64{uint64(ptr), uint64(len(a.config))}
	if err := inst.Call(inst.Function(hostabi.ExportDiscoveryInit), stack[:]); err != nil {
		return fail(err)
	}
	if code := hostabi.Errno(uint32(stack[0])); code != hostabi.ErrnoOK {
		return fail(fmt.Errorf("errno %d (%s)", uint32(code), code))
	}
	return inst, nil
}

var errClosed = errors.New("discovery adapter closed")

// Poll asks the module to look at its registry. It returns the set the
// module handed over during the call, if it did (changed), or an error when
// the registry did not answer, quoting what the module logged.
func (a *Adapter) Poll(ctx context.Context) (set []wire.Endpoint, changed bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, false, errClosed
	}
	if a.inst == nil {
		inst, err := a.instantiate()
		if err != nil {
			return nil, false, err
		}
		a.inst = inst
	}
	inst := a.inst
	a.set, a.gotSet, a.requests, a.result, a.ctx = nil, false, 0, nil, ctx
	defer func() { a.ctx = nil }()
	inst.Capture()
	budget := a.opts.CallBudget + time.Duration(maxRequests)*a.opts.Timeout
	stack := [1]uint64{}
	callErr := inst.CallWithin(inst.Function(hostabi.ExportDiscoveryPoll), stack[:], budget)
	msg := inst.Captured()
	if callErr != nil {
		inst.Close()
		a.inst = nil
		return nil, false, fmt.Errorf("module %s: %s: %w%s", a.mod.Source, hostabi.ExportDiscoveryPoll, callErr, msg)
	}
	if code := hostabi.Errno(uint32(stack[0])); code != hostabi.ErrnoOK {
		return nil, false, fmt.Errorf("module %s: errno %d (%s)%s", a.mod.Source, uint32(code), code, msg)
	}
	return a.set, a.gotSet, nil
}

// Close releases the instance.
func (a *Adapter) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.inst != nil {
		a.inst.Close()
		a.inst = nil
	}
	a.client.CloseIdleConnections()
}

func adapterOf(ctx context.Context) *Adapter {
	if inst := wasmhost.FromContext(ctx); inst != nil {
		a, _ := inst.Data.(*Adapter)
		return a
	}
	return nil
}

// Result codes of the i64 functions (as for balancing).
var (
	resMalformed  = int64(-2)
	resNotAllowed = int64(-4)
	resNoResult   = int64(-6)
)

func hostHTTP(ctx context.Context, m api.Module, stack []uint64) {
	a := adapterOf(ctx)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	buf, ok := m.Memory().Read(ptr, n)
	if a == nil || !ok {
		stack[0] = uint64(resMalformed)
		return
	}
	req, err := wire.DecodeFetchRequest(buf)
	if err != nil {
		stack[0] = uint64(resMalformed)
		return
	}
	origin, err := originOf(req.URL)
	if err != nil {
		stack[0] = uint64(resMalformed)
		return
	}
	if !a.allowed[origin] {
		stack[0] = uint64(resNotAllowed)
		return
	}
	a.requests++
	var res *wire.FetchResult
	if a.requests > maxRequests {
		res = &wire.FetchResult{Error: fmt.Sprintf("more than %d requests in one poll", maxRequests)}
	} else {
		res = a.do(req)
	}
	enc, err := wire.AppendFetchResult(nil, res)
	if err != nil {
		enc, _ = wire.AppendFetchResult(nil, &wire.FetchResult{Error: err.Error()})
	}
	a.result = enc
	stack[0] = uint64(int64(len(enc)))
}

// do makes a request; a failure before a response is a result with status 0.
func (a *Adapter) do(r *wire.FetchRequest) *wire.FetchResult {
	timeout := a.opts.Timeout
	if t := time.Duration(r.TimeoutMS) * time.Millisecond; t > 0 && t < timeout {
		timeout = t
	}
	parent := a.ctx
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return &wire.FetchResult{Error: err.Error()}
	}
	for _, h := range r.Header {
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return &wire.FetchResult{Error: err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return &wire.FetchResult{Error: "reading the response: " + err.Error()}
	}
	if len(body) > MaxBody {
		return &wire.FetchResult{Error: "response larger than " + strconv.Itoa(MaxBody) + " bytes"}
	}
	res := &wire.FetchResult{Status: uint32(resp.StatusCode), Body: body}
	for name, vs := range resp.Header {
		for _, v := range vs {
			res.Header = append(res.Header, wire.Header{Name: name, Value: v})
		}
	}
	return res
}

func hostHTTPResult(ctx context.Context, m api.Module, stack []uint64) {
	a := adapterOf(ctx)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	if a == nil || a.result == nil {
		stack[0] = uint64(resNoResult)
		return
	}
	if int(n) < len(a.result) {
		stack[0] = uint64(int64(len(a.result)))
		return
	}
	if !m.Memory().Write(ptr, a.result) {
		stack[0] = uint64(resMalformed)
		return
	}
	stack[0] = uint64(int64(len(a.result)))
}

func hostSetEndpoints(ctx context.Context, m api.Module, stack []uint64) {
	a := adapterOf(ctx)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	buf, ok := m.Memory().Read(ptr, n)
	if a == nil || !ok {
		stack[0] = uint64(hostabi.ErrnoInvalid)
		return
	}
	eps, err := wire.DecodeEndpoints(buf)
	if err == nil {
		err = CheckEndpoints(eps)
	}
	if err != nil {
		if inst := wasmhost.FromContext(ctx); inst != nil {
			inst.LogLine(slog.LevelWarn, "set_endpoints: "+err.Error())
		}
		stack[0] = uint64(hostabi.ErrnoInvalid)
		return
	}
	a.set, a.gotSet = eps, true
	stack[0] = uint64(hostabi.ErrnoOK)
}

// CheckEndpoints refuses a set with an address that is not host:port with a
// numeric port, a weight outside 1 to 1000000, or an address twice.
func CheckEndpoints(eps []wire.Endpoint) error {
	seen := make(map[string]bool, len(eps))
	for i, e := range eps {
		host, port, err := net.SplitHostPort(e.Address)
		if err != nil || host == "" {
			return fmt.Errorf("endpoint %d: address %q is not host:port", i, e.Address)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("endpoint %d: address %q: bad port", i, e.Address)
		}
		if e.Weight < 1 || e.Weight > 1_000_000 {
			return fmt.Errorf("endpoint %d (%s): weight %d is outside 1 to 1000000", i, e.Address, e.Weight)
		}
		if seen[e.Address] {
			return fmt.Errorf("endpoint %d: address %s twice", i, e.Address)
		}
		seen[e.Address] = true
	}
	return nil
}
