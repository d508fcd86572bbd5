// Package health is the Go guest SDK for wproxy health evaluators.
//
// An evaluator judges one active probe of a backend — its status, latency,
// selected headers and the first bytes of its body — as healthy, degraded
// (kept, at reduced weight) or unhealthy. wproxy applies the pool's rise and
// fall thresholds to the verdicts, so an evaluator judges each probe on its
// own. A module is a Go type implementing Evaluator, registered from an init
// function:
//
//	func init() { health.Register(func(config []byte) (health.Evaluator, error) { return myEval{}, nil }) }
//	func main() {}
//
// built with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared, and named
// in a pool's health.active.evaluator. The package owns the ABI's exports
// (wproxy_health_v1, see hostabi/ABI.md).
package health

import (
	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wire"
)

// Probe is one probe's result. Status is 0 when the probe got no response
// (Error says why); Expected reports whether Status is one of the pool's
// expected statuses; Body holds the body's first bytes.
type Probe = wire.Probe

// Verdict is an evaluator's judgement.
type Verdict int32

// Verdicts.
const (
	Healthy   = Verdict(hostabi.VerdictHealthy)
	Degraded  = Verdict(hostabi.VerdictDegraded)
	Unhealthy = Verdict(hostabi.VerdictUnhealthy)
)

// Evaluator judges probes. The host calls it from one goroutine at a time.
type Evaluator interface {
	Evaluate(p *Probe) Verdict
}

// Factory builds an Evaluator from the pool's evaluator_config (JSON; {}
// when unset).
type Factory func(config []byte) (Evaluator, error)

var (
	factory   Factory
	evaluator Evaluator
)

// Register sets the module's evaluator factory. Call it once, from init.
func Register(f Factory) {
	if factory != nil {
		panic("health: Register called twice")
	}
	factory = f
}

// Log writes a line to the host's log at the given level (hostabi.LogDebug
// to hostabi.LogError). Lines logged at warn or error during init are quoted
// in the host's error when init fails.
func Log(level int32, msg string) { hostLog(level, msg) }

const errEvaluate = -1

func initEvaluator(config []byte) (errno hostabi.Errno) {
	defer func() {
		if r := recover(); r != nil {
			Log(hostabi.LogError, "init panicked")
			errno = hostabi.ErrnoInternal
		}
	}()
	if factory == nil {
		Log(hostabi.LogError, "no evaluator registered: call health.Register from an init function")
		return hostabi.ErrnoInternal
	}
	e, err := factory(config)
	if err != nil {
		Log(hostabi.LogError, err.Error())
		return hostabi.ErrnoInvalid
	}
	if e == nil {
		return hostabi.ErrnoInternal
	}
	evaluator = e
	return hostabi.ErrnoOK
}

func evaluate(buf []byte) int32 {
	if evaluator == nil {
		return errEvaluate
	}
	p, err := wire.DecodeProbe(buf)
	if err != nil {
		Log(hostabi.LogError, err.Error())
		return errEvaluate
	}
	return int32(evaluator.Evaluate(p))
}
