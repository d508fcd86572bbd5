// Command badimport imports a host function that does not exist.
package main

import "github.com/wproxy/wproxy/sdk/go/lb"

//go:wasmimport wproxy_lb_v1 teleport
func teleport() uint32

type p struct{}

func (p) SetEndpoints(uint64, []lb.Endpoint) error { return nil }
func (p) Pick(lb.Request) int                      { return int(teleport()) }

func init() { lb.Register(func([]byte) (lb.Policy, error) { return p{}, nil }) }

func main() {}
