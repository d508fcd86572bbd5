package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// fastBackend answers every request on a connection with a fixed response,
// with as little work as possible, so that a benchmark measures the proxy.
func fastBackend(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\nhello from backend 1\n")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkProxyKeepAlive sends GETs over keep-alive connections through the
// proxy (own HTTP/1.1 server, round_robin module, pooled upstream
// connections) to an in-process backend. ns/op and allocs/op include the
// client and the backend, which do little.
func BenchmarkProxyKeepAlive(b *testing.B) {
	addr := fastBackend(b)
	url, _ := proxyForBench(b, addr)
	host := strings.TrimPrefix(url, "http://")
	for _, conns := range []int{1, 16} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			b.ReportAllocs()
			req := []byte("GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
			var wg sync.WaitGroup
			per := b.N / conns
			b.ResetTimer()
			for range conns {
				wg.Go(func() {
					c, err := net.Dial("tcp", host)
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					br := bufio.NewReader(c)
					for range per {
						if _, err := c.Write(req); err != nil {
							b.Error(err)
							return
						}
						if err := readResponse(br); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// readResponse reads one response with a Content-Length body.
func readResponse(br *bufio.Reader) error {
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			fmt.Sscan(string(v), &n)
		}
	}
	if n < 0 {
		return fmt.Errorf("no Content-Length")
	}
	_, err := io.CopyN(io.Discard, br, int64(n))
	return err
}

func proxyForBench(b *testing.B, backend string) (string, *Server) {
	return startProxy(b, fmt.Sprintf("listeners:\n  - address: 127.0.0.1:0\n    routes: [{pool: p}]\npools:\n  p:\n    backends: [{address: %q}]\n", backend))
}
