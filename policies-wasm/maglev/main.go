// Command maglev is a default balancing module: consistent hashing with
// Maglev's lookup table, optionally with bounded loads (see package
// maglevpolicy).
//
// policy_config: {"table_size": 65537, "fallback": "random",
// "bounded_loads": false, "balance_factor": 1.25}
package main

import (
	"github.com/wproxy/wproxy/policies-wasm/maglev/maglevpolicy"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

func init() { lb.Register(maglevpolicy.New) }

func main() {}
