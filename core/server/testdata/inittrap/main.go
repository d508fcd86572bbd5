// Command inittrap ends its instance (proc_exit) during init.
package main

import (
	"os"

	"github.com/wproxy/wproxy/sdk/go/lb"
)

func init() {
	lb.Register(func([]byte) (lb.Policy, error) {
		os.Exit(3)
		return nil, nil
	})
}

func main() {}
