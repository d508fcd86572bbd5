package etcdreg_test

import (
	"context"
	"log"
	"time"

	"github.com/wproxy/wproxy/backendkit/etcdreg"
)

// A server registers itself under /wproxy/services/api for as long as it
// runs; the README shows the same code.
func Example() {
	ctx := context.Background()
	reg, err := etcdreg.Register(ctx, etcdreg.Config{
		Endpoints: []string{"http://10.0.0.5:2379"},
		Prefix:    "/wproxy/services/api",
		Address:   "10.0.0.1:8080",
		TTL:       10 * time.Second,
		Zone:      "a",
	})
	if err != nil {
		log.Fatal(err) // etcd did not take it before ctx ended
	}
	defer reg.Close(context.Background()) // revokes the lease: the key goes at once

	// ... serve ...
}
