// Command first_healthy is an example balancing policy: it sends every
// request to the first endpoint of the pool, so the others are spares that
// take traffic only when the first one leaves the set (active-passive
// failover). With {"prefer_zone": "z"} in policy_config it prefers the first
// endpoint in zone z.
//
// Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o first_healthy.wasm .
package main

import (
	"encoding/json"

	"github.com/wproxy/wproxy/sdk/go/lb"
)

type config struct {
	PreferZone string `json:"prefer_zone"`
}

type firstHealthy struct {
	cfg    config
	chosen int
}

func (p *firstHealthy) SetEndpoints(_ uint64, eps []lb.Endpoint) error {
	p.chosen = lb.NoEndpoint
	for i, ep := range eps {
		if p.cfg.PreferZone == "" || ep.Zone == p.cfg.PreferZone {
			p.chosen = i
			return nil
		}
	}
	if len(eps) > 0 {
		p.chosen = 0
	}
	return nil
}

func (p *firstHealthy) Pick(lb.Request) int { return p.chosen }

func init() {
	lb.Register(func(raw []byte) (lb.Policy, error) {
		p := &firstHealthy{}
		if !lb.IsEmptyConfig(raw) {
			if err := json.Unmarshal(raw, &p.cfg); err != nil {
				return nil, err
			}
		}
		return p, nil
	})
}

func main() {}
