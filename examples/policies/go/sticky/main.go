// Command sticky is the policy of the README's "write your own policy in Go":
// each user goes to one backend by the hash of the pool's hash_key (say
// [header:X-User]); requests without the key are spread at random. Plain
// modulo hashing moves most keys when the pool changes size.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o sticky.wasm .
package main

import "github.com/wproxy/wproxy/sdk/go/lb"

// sticky sends each user to one backend by the hash of the pool's
// hash_key (say [header:X-User]), and spreads requests without it.
type sticky struct{ n int }

func (p *sticky) SetEndpoints(_ uint64, eps []lb.Endpoint) error { p.n = len(eps); return nil }

func (p *sticky) Pick(r lb.Request) int {
	if p.n == 0 {
		return lb.NoEndpoint
	}
	if r.HashPresent {
		return int(r.Hash % uint64(p.n))
	}
	return int(r.Random % uint64(p.n))
}

func init() { lb.Register(func([]byte) (lb.Policy, error) { return &sticky{}, nil }) }

func main() {}
