// Package discovery is the Go guest SDK for wproxy discovery modules.
//
// A discovery module finds a pool's backends in a registry (etcd, Consul, a
// DNS name, an HTTP API) and hands the host the whole set. With this package a
// module is a Go type implementing Source, registered from an init function
// of a main package:
//
//	func init() {
//		discovery.Register(func(config []byte) (discovery.Source, error) { return &mySource{}, nil })
//	}
//
//	func main() {}
//
// built with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared, and named
// in a pool's discovery source (module: FILE.wasm). The host calls Poll at the
// source's interval, one call at a time; Poll asks the registry with HTTP and
// calls SetEndpoints when the set changed. The package owns the ABI's
// exports and imports (wproxy_discovery_v1, see hostabi/ABI.md). Outside
// GOOS=wasip1 the package compiles too, and a test answers the host's calls
// with SetNativeHost.
//
// A module has no goroutines of its own to rely on: HTTP blocks the call
// until the host has the response, within the request's timeout.
package discovery

import (
	"errors"
	"time"

	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wire"
)

// Endpoint is one backend: Address is host:port, Weight at least 1 (at most
// 1000000), Zone and Meta optional.
type Endpoint = wire.Endpoint

// Header is one header field of a request or response.
type Header = wire.Header

// Request is an HTTP request for HTTP. URL is absolute (http:// or https://)
// and reaches one of the source's endpoints. Method empty means GET; Timeout
// 0 means the host's default (5 s), and the host caps it at the source's
// timeout.
type Request struct {
	Method  string
	URL     string
	Header  []Header
	Body    []byte
	Timeout time.Duration
}

// Response is the outcome of a request. Status is 0 when the request failed
// before a response, and Error then says why. Header names are canonical
// (Content-Type). Bodies larger than 4 MiB are cut to an error.
type Response struct {
	Status int
	Error  string
	Header []Header
	Body   []byte
}

// HeaderValue returns the first value of the named header field (compared
// without regard to case), or "".
func (r *Response) HeaderValue(name string) string {
	for _, h := range r.Header {
		if equalFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// Source is a discovery adapter. The host calls it from one goroutine at a
// time.
type Source interface {
	// Poll looks at the registry and calls SetEndpoints when the set changed
	// since the last call (and on the first poll), with the whole set, even
	// an empty one. It returns nil when the registry answered, changed or
	// not, and an error when it did not: the host then keeps the last set,
	// logs the error and polls again after a back-off.
	Poll() error
}

// Factory builds a Source from the source's config (JSON; {} when unset).
// An error refuses the configuration, quoting the error.
type Factory func(config []byte) (Source, error)

var (
	factory Factory
	source  Source
)

// Register sets the module's source factory. Call it once, from init.
func Register(f Factory) {
	if factory != nil {
		panic("discovery: Register called twice")
	}
	factory = f
}

// Level is the severity of a log line.
type Level int32

// Levels.
const (
	Debug = Level(hostabi.LogDebug)
	Info  = Level(hostabi.LogInfo)
	Warn  = Level(hostabi.LogWarn)
	Error = Level(hostabi.LogError)
)

// Log writes a line to the host's log, attributed to the module and the
// source. Lines logged at warn or error during init are quoted in the host's
// error when init fails.
func Log(level Level, msg string) { hostLog(level, msg) }

// Errors of HTTP and SetEndpoints.
var (
	ErrHTTPDenied  = errors.New("http: destination is not among the source's endpoints")
	ErrHTTPInvalid = errors.New("http: malformed request or URL")
	ErrSetInvalid  = errors.New("set_endpoints: the host refused the set (invalid)")
)

// respBuf receives results; it grows to the largest result seen.
var respBuf = make([]byte, 4096)

// HTTP makes a request through the host and waits for its response. A
// request that failed before a response (refused, timed out) is a Response
// with Status 0 and Error set, not an error; the error is for requests the
// host would not make.
func HTTP(req *Request) (*Response, error) {
	ms := uint32(0)
	if req.Timeout > 0 {
		t := (req.Timeout + time.Millisecond - 1) / time.Millisecond
		if t > 1<<31 {
			t = 1 << 31
		}
		ms = uint32(t)
	}
	enc, err := wire.AppendFetchRequest(nil, &wire.FetchRequest{
		Method: req.Method, URL: req.URL, Header: req.Header, TimeoutMS: ms, Body: req.Body,
	})
	if err != nil {
		return nil, errors.New("http: " + err.Error())
	}
	n := host.http(enc)
	switch {
	case n == hostabi.ResultDenied:
		return nil, ErrHTTPDenied
	case n == hostabi.ResultInvalid:
		return nil, ErrHTTPInvalid
	case n < 0:
		return nil, errors.New("http: result " + itoa(n))
	}
	// The result is about n bytes; a host may still answer http_result with
	// a larger size, asking for a larger buffer.
	for range 4 {
		if n > int64(len(respBuf)) {
			respBuf = make([]byte, n)
		}
		m := host.httpResult(respBuf)
		if m < 0 {
			return nil, errors.New("http_result: result " + itoa(m))
		}
		if m > int64(len(respBuf)) {
			n = m
			continue
		}
		r, err := wire.DecodeFetchResult(respBuf[:m])
		if err != nil {
			return nil, errors.New("http: " + err.Error())
		}
		return &Response{Status: int(r.Status), Error: r.Error, Header: r.Header, Body: r.Body}, nil
	}
	return nil, errors.New("http_result: the result keeps growing")
}

// SetEndpoints hands the host the whole set of backends, in any order. It
// fails when the set cannot be encoded (a string longer than 65535 bytes) or
// the host refuses it (an address that is not host:port, a weight outside 1
// to 1000000).
func SetEndpoints(eps []Endpoint) error {
	enc, err := wire.AppendEndpoints(nil, eps)
	if err != nil {
		return errors.New("set_endpoints: " + err.Error())
	}
	if e := hostabi.Errno(host.setEndpoints(enc)); e != hostabi.ErrnoOK {
		if e == hostabi.ErrnoInvalid {
			return ErrSetInvalid
		}
		return errors.New("set_endpoints: " + e.String())
	}
	return nil
}

func initSource(config []byte) (errno hostabi.Errno) {
	defer func() {
		if r := recover(); r != nil {
			Log(Error, "init panicked")
			errno = hostabi.ErrnoInternal
		}
	}()
	if factory == nil {
		Log(Error, "no source registered: call discovery.Register from an init function")
		return hostabi.ErrnoInternal
	}
	// The host's buffer is reused by the next wproxy_alloc: the factory
	// gets a copy it may keep.
	s, err := factory(append([]byte(nil), config...))
	if err != nil {
		Log(Error, err.Error())
		return hostabi.ErrnoInvalid
	}
	if s == nil {
		Log(Error, "the factory returned no source")
		return hostabi.ErrnoInternal
	}
	source = s
	return hostabi.ErrnoOK
}

func poll() (errno hostabi.Errno) {
	defer func() {
		if r := recover(); r != nil {
			Log(Error, "poll panicked")
			errno = hostabi.ErrnoInternal
		}
	}()
	if source == nil {
		Log(Error, "poll before a successful init")
		return hostabi.ErrnoInternal
	}
	if err := source.Poll(); err != nil {
		Log(Error, err.Error())
		return hostabi.ErrnoInternal
	}
	return hostabi.ErrnoOK
}

func itoa(v int64) string {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = uint64(-v)
	}
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			break
		}
	}
	if neg {
		return "-" + string(b[i:])
	}
	return string(b[i:])
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
