// Command health_status is the default health evaluator: a probe is
// healthy when its status is one of the pool's expected statuses (200 unless
// configured), unhealthy when it got another status (a 5xx means the server
// says it is overloaded or broken) or no response (a timeout or a refused
// connection), and degraded when it was healthy but slower than
// degraded_latency_ms.
//
// evaluator_config: {"degraded_latency_ms": 0} (0: never degraded)
package main

import (
	"errors"

	"github.com/wproxy/wproxy/policies-wasm/internal/flatjson"
	"github.com/wproxy/wproxy/sdk/go/health"
)

type status struct{ slowNS uint64 }

func (s status) Evaluate(p *health.Probe) health.Verdict {
	switch {
	case p.Status == 0 || !p.Expected:
		return health.Unhealthy
	case s.slowNS > 0 && p.LatencyNS > s.slowNS:
		return health.Degraded
	}
	return health.Healthy
}

func newStatus(raw []byte) (health.Evaluator, error) {
	s := status{}
	if len(raw) == 0 || string(raw) == "{}" || string(raw) == "null" {
		return s, nil
	}
	o, err := flatjson.Parse(raw)
	if err == nil {
		err = o.Check("degraded_latency_ms")
	}
	var ms int64
	if err == nil {
		ms, err = o.Int("degraded_latency_ms", 0, 0, 3_600_000)
	}
	if err != nil {
		return nil, errors.New("health_status evaluator_config: " + err.Error())
	}
	s.slowNS = uint64(ms) * 1_000_000
	return s, nil
}

func init() { health.Register(newStatus) }

func main() {}
