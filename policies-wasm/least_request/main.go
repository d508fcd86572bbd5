// Command least_request is a default balancing module: power of two choices
// on requests in flight, weighted (see package leastreq).
//
// policy_config: {"choice_count": 2}
package main

import (
	"github.com/wproxy/wproxy/policies-wasm/least_request/leastreq"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

func init() { lb.Register(leastreq.New) }

func main() {}
