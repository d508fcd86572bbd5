// Command initfail rejects every configuration with a reason.
package main

import (
	"errors"

	"github.com/wproxy/wproxy/sdk/go/lb"
)

func init() {
	lb.Register(func(config []byte) (lb.Policy, error) {
		return nil, errors.New("threshold must be between 0 and 1, got " + string(config))
	})
}

func main() {}
