// Command gogrow allocates without bound when asked to pick with sequence
// number 1, until the Go runtime dies for want of memory; it picks endpoint 0
// otherwise.
package main

import "github.com/wproxy/wproxy/sdk/go/lb"

type p struct{ hoard [][]byte }

func (*p) SetEndpoints(uint64, []lb.Endpoint) error { return nil }
func (q *p) Pick(r lb.Request) int {
	if r.Seq == 1 {
		for {
			q.hoard = append(q.hoard, make([]byte, 1<<20))
		}
	}
	return 0
}

func init() { lb.Register(func([]byte) (lb.Policy, error) { return &p{}, nil }) }

func main() {}
