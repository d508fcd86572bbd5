package lb_test

import (
	"fmt"

	"github.com/wproxy/wproxy/sdk/go/lb"
)

// largestWeight is a tiny policy: it sends every request to the endpoint with
// the largest weight, and spreads ties by the request's sequence number.
type largestWeight struct{ best []int }

func (p *largestWeight) SetEndpoints(_ uint64, eps []lb.Endpoint) error {
	p.best = p.best[:0]
	var top uint32
	for i, ep := range eps {
		switch {
		case ep.Weight > top:
			top, p.best = ep.Weight, append(p.best[:0], i)
		case ep.Weight == top:
			p.best = append(p.best, i)
		}
	}
	return nil
}

func (p *largestWeight) Pick(r lb.Request) int {
	if len(p.best) == 0 {
		return lb.NoEndpoint
	}
	return p.best[r.Seq%uint64(len(p.best))]
}

// A policy is an ordinary Go type: a module registers its factory from an
// init function, and the policy can be tested natively by calling it as the
// host would.
func Example() {
	// In the module's main package:
	//	func init() { lb.Register(func([]byte) (lb.Policy, error) { return &largestWeight{}, nil }) }
	//	func main() {}
	p := &largestWeight{}
	p.SetEndpoints(1, []lb.Endpoint{
		{Address: "10.0.0.1:80", Weight: 1},
		{Address: "10.0.0.2:80", Weight: 3},
		{Address: "10.0.0.3:80", Weight: 3},
	})
	for seq := range uint64(4) {
		fmt.Println(p.Pick(lb.Request{Seq: seq}))
	}
	// Output:
	// 1
	// 2
	// 1
	// 2
}
