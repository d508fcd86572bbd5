// Command command is a balancing module built as a WASI command (no
// -buildmode=c-shared): it exports _start, not _initialize, and is refused.
package main

import "github.com/wproxy/wproxy/sdk/go/lb"

type p struct{}

func (p) SetEndpoints(uint64, []lb.Endpoint) error { return nil }
func (p) Pick(lb.Request) int                      { return 0 }

func init() { lb.Register(func([]byte) (lb.Policy, error) { return p{}, nil }) }

func main() {}
