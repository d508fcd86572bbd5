// Command cpu_mem is an example health evaluator: it reads the probe's JSON
// body, such as {"cpu":0.93,"mem":0.41} (backendkit's health handler answers
// so), and judges the backend degraded when the larger of cpu and mem is
// above degraded_above, unhealthy above unhealthy_above or when the status
// is not expected, healthy otherwise.
//
// evaluator_config: {"degraded_above": 0.9, "unhealthy_above": 1.0}
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o cpu_mem.wasm .
package main

import (
	"encoding/json"
	"errors"

	"github.com/wproxy/wproxy/sdk/go/health"
)

type config struct {
	DegradedAbove  float64 `json:"degraded_above"`
	UnhealthyAbove float64 `json:"unhealthy_above"`
}

type cpuMem struct{ cfg config }

func (e cpuMem) Evaluate(p *health.Probe) health.Verdict {
	if p.Status == 0 || !p.Expected {
		return health.Unhealthy
	}
	var figures struct {
		CPU float64 `json:"cpu"`
		Mem float64 `json:"mem"`
	}
	if err := json.Unmarshal(p.Body, &figures); err != nil {
		return health.Healthy // no figures: the status decides
	}
	load := max(figures.CPU, figures.Mem)
	switch {
	case load > e.cfg.UnhealthyAbove:
		return health.Unhealthy
	case load > e.cfg.DegradedAbove:
		return health.Degraded
	}
	return health.Healthy
}

func newCPUMem(raw []byte) (health.Evaluator, error) {
	e := cpuMem{cfg: config{DegradedAbove: 0.9, UnhealthyAbove: 1.0}}
	if len(raw) > 0 {
		dec := json.NewDecoder(bytesReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e.cfg); err != nil {
			return nil, errors.New("cpu_mem evaluator_config: " + err.Error())
		}
	}
	if e.cfg.DegradedAbove > e.cfg.UnhealthyAbove {
		return nil, errors.New("cpu_mem evaluator_config: degraded_above is above unhealthy_above")
	}
	return e, nil
}

func init() { health.Register(newCPUMem) }

func main() {}
