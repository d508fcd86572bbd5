// Command initoom allocates far more memory than an instance may have during
// init.
package main

import "github.com/wproxy/wproxy/sdk/go/lb"

var hog [][]byte

type p struct{}

func (p) SetEndpoints(uint64, []lb.Endpoint) error { return nil }
func (p) Pick(lb.Request) int                      { return 0 }

func init() {
	lb.Register(func([]byte) (lb.Policy, error) {
		for range 64 {
			hog = append(hog, make([]byte, 16<<20)) // 1 GiB in all
		}
		return p{}, nil
	})
}

func main() {}
