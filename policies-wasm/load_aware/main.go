// Command load_aware is a default balancing module: power of two choices on
// each backend's sampled load and the proxy's requests in flight (see
// package loadaware for the load endpoint's format and the configuration).
//
// policy_config: {"path": "/load", "ttl_ms": 1000, "timeout_ms": 250,
// "max_age_ms": 10000, "load_weight": 8, "choice_count": 2}
package main

import (
	"github.com/wproxy/wproxy/policies-wasm/load_aware/loadaware"
	"github.com/wproxy/wproxy/sdk/go/lb"
)

func init() { lb.Register(loadaware.New) }

func main() {}
