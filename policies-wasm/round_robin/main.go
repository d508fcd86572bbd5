// Command round_robin is the default balancing module: smooth weighted round
// robin (see package swrr). It takes no policy_config.
package main

import (
	"github.com/wproxy/wproxy/policies-wasm/round_robin/swrr"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

func init() { lb.Register(swrr.New) }

func main() {}
