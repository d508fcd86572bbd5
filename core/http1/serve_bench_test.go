package http1

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// feedConn is a client connection that sends one request per read, n times,
// and then ends; what the server writes is dropped. It lets BenchmarkServe
// measure the connection loop without the cost and noise of sockets.
type feedConn struct {
	req []byte
	n   int
}

func (f *feedConn) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, io.EOF
	}
	f.n--
	return copy(p, f.req), nil
}

func (f *feedConn) Write(p []byte) (int, error)        { return len(p), nil }
func (f *feedConn) Close() error                       { return nil }
func (f *feedConn) LocalAddr() net.Addr                { return feedAddr }
func (f *feedConn) RemoteAddr() net.Addr               { return feedAddr }
func (f *feedConn) SetDeadline(t time.Time) error      { return nil }
func (f *feedConn) SetReadDeadline(t time.Time) error  { return nil }
func (f *feedConn) SetWriteDeadline(t time.Time) error { return nil }

var feedAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// BenchmarkServe is the server's per-request cost on a keep-alive
// connection: the loop, parsing, limits and timeouts, and a small response.
func BenchmarkServe(b *testing.B) {
	for _, tc := range []struct {
		name string
		raw  string
	}{{"wrk", sampleRequests[1]}, {"chrome", sampleRequests[7]}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			s := &Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header()["Content-Length"] = []string{"2"}
					w.Write([]byte("ok"))
				}),
				ReadHeaderTimeout: 10 * time.Second,
				IdleTimeout:       60 * time.Second,
				Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
			}
			s.init()
			c := newConn(s, &feedConn{req: []byte(tc.raw), n: b.N})
			s.track(c)
			b.ResetTimer()
			c.serve()
		})
	}
}
