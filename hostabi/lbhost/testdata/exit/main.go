// Command exit ends its own instance (proc_exit) when asked to pick with
// sequence number 1, and picks endpoint 0 otherwise.
package main

import (
	"os"

	"github.com/wproxy/wproxy/sdk/go/lb"
)

type p struct{}

func (p) SetEndpoints(uint64, []lb.Endpoint) error { return nil }
func (p) Pick(r lb.Request) int {
	if r.Seq == 1 {
		os.Exit(3)
	}
	return 0
}

func init() { lb.Register(func([]byte) (lb.Policy, error) { return p{}, nil }) }

func main() {}
