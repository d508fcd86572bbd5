// Package lb is the Go guest SDK for wproxy balancing modules.
//
// A balancing module chooses, for each request, one endpoint of a pool. With
// this package a module is a small Go type that implements Policy, registered
// from an init function of a main package:
//
//	package main
//
//	import "github.com/wproxy/wproxy/sdk/go/lb"
//
//	type first struct{ n int }
//
//	func (p *first) SetEndpoints(_ uint64, eps []lb.Endpoint) error { p.n = len(eps); return nil }
//
//	func (p *first) Pick(lb.Request) int {
//		if p.n == 0 {
//			return lb.NoEndpoint
//		}
//		return 0
//	}
//
//	func init() {
//		lb.Register(func(config []byte) (lb.Policy, error) { return &first{}, nil })
//	}
//
//	func main() {}
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o first.wasm .
//
// and name the file in a pool's policy field. The package owns every export
// and import of the host ABI (wproxy_lb_v1, see hostabi/ABI.md): the ABI marker,
// the buffer allocator, init, endpoint updates and the pick call. Outside
// GOOS=wasip1 the package compiles too, so a policy can be tested natively.
//
// The host calls a module instance from one goroutine at a time, so a Policy
// needs no locking; it may keep state between calls, but several instances of
// a module may serve one pool at once, each with its own state. State that
// must be exact across instances should be derived from Request.Seq, which the
// host numbers per pool.
package lb

import (
	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wire"
)

// Endpoint is one member of the pool, as the host pushes it.
type Endpoint = wire.Endpoint

// NoEndpoint is the Pick result meaning that no endpoint fits the request;
// the host answers the request with 503.
const NoEndpoint = -1

// Request holds the per-request inputs of a pick. All are scalars computed by
// the host; no strings cross the boundary.
type Request struct {
	// Hash is the 64-bit hash of the pool's configured hash key (xxHash64 of
	// the key's bytes). It is meaningful only when HashPresent is true.
	Hash uint64
	// HashPresent reports whether the request carried the hash key.
	HashPresent bool
	// Seq is the pool's request sequence number: every pick of the pool gets
	// the next number, whichever instance serves it. Start at zero.
	Seq uint64
	// Random is a uniformly distributed random number, fresh per request.
	Random uint64
}

// Policy is a balancing algorithm. See the package documentation for how the
// host calls it.
type Policy interface {
	// SetEndpoints replaces the endpoints Pick chooses from. version grows
	// with every change of the pool. It is called before the first Pick and
	// after every change; an error keeps the previous set in the host's eyes.
	SetEndpoints(version uint64, eps []Endpoint) error
	// Pick returns the index of the chosen endpoint in the latest set given
	// to SetEndpoints, or NoEndpoint.
	Pick(req Request) int
}

// Factory builds a Policy from the pool's policy_config, which the host hands
// over as JSON (an empty object when the pool sets none). Decode it with
// encoding/json, with DisallowUnknownFields so that a misspelt field is an
// error; the SDK itself does not import encoding/json, which keeps modules
// that need no configuration small.
type Factory func(config []byte) (Policy, error)

var (
	factory Factory
	policy  Policy
)

// Register sets the factory of the module's policy. Call it once, from an init
// function; a second call panics.
func Register(f Factory) {
	if factory != nil {
		panic("lb: Register called twice")
	}
	factory = f
}

// IsEmptyConfig reports whether config is empty: no bytes, JSON null, or an
// empty object. A policy without configuration fields uses it to reject a
// policy_config it would otherwise ignore.
func IsEmptyConfig(config []byte) bool {
	var b []byte
	for _, c := range config {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			b = append(b, c)
		}
	}
	s := string(b)
	return s == "" || s == "null" || s == "{}"
}

// Level is the severity of a log line.
type Level int32

// Log levels.
const (
	Debug = Level(hostabi.LogDebug)
	Info  = Level(hostabi.LogInfo)
	Warn  = Level(hostabi.LogWarn)
	Error = Level(hostabi.LogError)
)

// Log writes msg to the host's log, attributed to this module and pool.
// Lines logged at Error during init become part of the host's error message.
func Log(level Level, msg string) { hostLog(level, msg) }

// The functions below carry the ABI calls; the wasip1 exports are thin
// wrappers around them so that they can be tested natively.

func initPolicy(config []byte) (errno hostabi.Errno) {
	defer recoverTo(&errno, "init")
	if factory == nil {
		Log(Error, "no policy registered: call lb.Register from an init function")
		return hostabi.ErrnoInternal
	}
	p, err := factory(config)
	if err != nil {
		Log(Error, err.Error())
		return hostabi.ErrnoInvalid
	}
	if p == nil {
		Log(Error, "factory returned a nil policy")
		return hostabi.ErrnoInternal
	}
	policy = p
	return hostabi.ErrnoOK
}

func setEndpoints(version uint64, buf []byte) (errno hostabi.Errno) {
	defer recoverTo(&errno, "set_endpoints")
	if policy == nil {
		Log(Error, "set_endpoints before init")
		return hostabi.ErrnoInternal
	}
	eps, err := wire.DecodeEndpoints(buf)
	if err != nil {
		Log(Error, err.Error())
		return hostabi.ErrnoInvalid
	}
	if err := policy.SetEndpoints(version, eps); err != nil {
		Log(Error, err.Error())
		return hostabi.ErrnoUnsupported
	}
	return hostabi.ErrnoOK
}

// pickError is returned to the host when pick is called before init.
const pickError = -2

// pick runs on every request, so it does not recover panics: a deferred
// recover costs about 100 ns in a Go guest, more than the rest of the call. A
// panic in Pick ends the instance; the host discards it, answers that request
// with its fallback and starts a new instance.
func pick(hash, seq, random uint64, flags uint32) int32 {
	if policy == nil {
		return pickError
	}
	return int32(policy.Pick(Request{
		Hash:        hash,
		HashPresent: flags&hostabi.PickHashPresent != 0,
		Seq:         seq,
		Random:      random,
	}))
}

func recoverTo(errno *hostabi.Errno, call string) {
	if r := recover(); r != nil {
		Log(Error, call+" panicked: "+describe(r))
		*errno = hostabi.ErrnoInternal
	}
}

func describe(r any) string {
	switch v := r.(type) {
	case error:
		return v.Error()
	case string:
		return v
	}
	return "(a value that is not an error or a string)"
}
