package http1_test

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/wproxy/wproxy/core/http1"
)

// A configuration reload changes the limits of a server while it serves:
// connections take them for their next request, Serve for its next accept.
func ExampleServer_SetLimits() {
	s := &http1.Server{
		Handler:           http.NotFoundHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxConns:          10000,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go s.Serve(ln)
	defer s.Close()

	s.SetLimits(http1.Limits{
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxConns:          20000,
		// MaxHeaderBytes and MaxRequestLineBytes: the defaults.
	})
	fmt.Println("connections:", s.Conns())
	// Output: connections: 0
}
