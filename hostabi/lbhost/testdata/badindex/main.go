// Command badindex picks an index past the end of the set on odd sequence
// numbers and endpoint 0 on even ones.
package main

import "github.com/wproxy/wproxy/sdk/go/lb"

type p struct{ n int }

func (q *p) SetEndpoints(_ uint64, eps []lb.Endpoint) error { q.n = len(eps); return nil }
func (q *p) Pick(r lb.Request) int {
	if r.Seq%2 == 1 {
		return q.n + 10
	}
	return 0
}

func init() { lb.Register(func([]byte) (lb.Policy, error) { return &p{}, nil }) }

func main() {}
