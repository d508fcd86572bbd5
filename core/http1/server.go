// Package http1 is wproxy's HTTP/1.1 server: one goroutine per connection
// that reads requests with net/http's own parser (http.ReadRequest, so the
// framing rules and smuggling defences are the standard library's) and hands
// them to an http.Handler with a lean ResponseWriter.
//
// It exists because net/http's Server spends, per request, a background read
// with its own goroutine and syscall, a cancellable context and several
// deadline updates, which cost more than the rest of a proxied request;
// RATIONALE.md has the figures. What it leaves out follows: a request's
// context is not cancelled when the client goes away (the proxy bounds the
// wait with its upstream timeouts instead, as HAProxy does by default), and
// there is no HTTP/2 (TLS listeners with HTTP/2 use net/http).
//
// A Server is safe for concurrent use; Serve may be called for several
// listeners.
package http1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// DefaultMaxHeaderBytes bounds a request's line and header when the Server
// sets no limit.
const DefaultMaxHeaderBytes = 1 << 20

// Server serves HTTP/1.x connections.
type Server struct {
	// Handler answers every request.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's line and header once
	// its first byte has arrived. Zero means no limit.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection, and for the first one. Zero means no limit.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and header. Default
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Logger receives handler panics and protocol errors. Default
	// slog.Default().
	Logger *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	shutdown  atomic.Bool
	done      chan struct{} // closed by Shutdown or Close
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

func (s *Server) init() {
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
		s.done = make(chan struct{})
	}
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// ErrServerClosed then.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.shutdown.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait and retry.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("accept failed; retrying", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.done:
				}
				continue
			}
			return err
		}
		backoff = 0
		c := newConn(s, nc)
		if !s.track(c) {
			nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) maxHeaderBytes() int64 {
	if s.MaxHeaderBytes > 0 {
		return int64(s.MaxHeaderBytes)
	}
	return DefaultMaxHeaderBytes
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections, and waits for active
// ones to finish their request (they close after it) until ctx is done; then
// it closes what is left and returns ctx's error. Hijacked connections are the
// hijacker's to close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			s.closeAll()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.stopAccepting()
	s.closeAll()
	return nil
}

// stopAccepting marks the server shut down and closes its listeners.
func (s *Server) stopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if !s.shutdown.Swap(true) {
		close(s.done)
	}
	for ln := range s.listeners {
		ln.Close()
	}
}

// closeIdle closes idle connections and returns how many are still open.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosing) {
			c.nc.Close()
		}
	}
	return len(s.conns)
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.state.Store(stateClosing)
		c.nc.Close()
	}
}

// Connection states.
const (
	stateIdle    uint32 = iota // waiting for a request
	stateActive                // reading or serving a request
	stateClosing               // closed by Shutdown or Close
)

type conn struct {
	srv        *Server
	nc         net.Conn
	remoteAddr string
	state      atomic.Uint32
	lr         limitedReader
	br         *bufio.Reader
	bw         *bufio.Writer
	w          response
	hijacked   bool
	rs         reqState
	// readDeadline is the read deadline last set through the server;
	// handlers that set their own (http.ResponseController) reset it.
	readDeadline time.Time
}

func (c *conn) setReadDeadline(t time.Time) error {
	c.readDeadline = t
	return c.nc.SetReadDeadline(t)
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc, remoteAddr: nc.RemoteAddr().String()}
	c.lr = limitedReader{r: nc, n: -1}
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.lr)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(nc)
	c.w.c = c
	c.w.header = make(http.Header, 8)
	return c
}

// limitedReader reads from the connection, returning EOF once n bytes have
// been read when n >= 0: the header size limit.
type limitedReader struct {
	r   io.Reader
	n   int64
	hit bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		l.hit = true
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func (c *conn) serve() {
	defer func() {
		if !c.hijacked {
			c.nc.Close()
			c.release()
		}
		c.srv.untrack(c)
	}()
	for {
		if !c.state.CompareAndSwap(stateActive, stateIdle) && c.state.Load() != stateIdle {
			return
		}
		if c.srv.shutdown.Load() {
			return
		}
		// The header size limit counts from the first byte of the request.
		c.lr.n, c.lr.hit = c.srv.maxHeaderBytes()+4096, false
		if c.br.Buffered() == 0 {
			if d := c.srv.IdleTimeout; d > 0 {
				// Moving a deadline costs a timer update; under steady
				// load the one set moments ago is good enough, so the
				// idle timeout is kept to within a sixteenth.
				now := time.Now()
				if c.readDeadline.Sub(now) < d-d/16 {
					c.readDeadline = now.Add(d)
					c.nc.SetReadDeadline(c.readDeadline)
				}
			}
			if _, err := c.br.Peek(1); err != nil {
				return
			}
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // Shutdown closed it while the request arrived
		}
		// The whole header is usually in the buffer already; only a slow
		// client needs its own deadline.
		if d := c.srv.ReadHeaderTimeout; d > 0 && !headerBuffered(c.br) {
			c.setReadDeadline(time.Now().Add(d))
		}
		if !c.serveOne() {
			return
		}
	}
}

// headerBuffered reports whether a complete request header is buffered.
func headerBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, crlfcrlf)
}

var crlfcrlf = []byte("\r\n\r\n")

// serveOne reads and answers one request; it reports whether the connection
// can carry another.
func (c *conn) serveOne() (keepAlive bool) {
	req, fast := c.fastRequest()
	if !fast {
		var err error
		if req, err = http.ReadRequest(c.br); err != nil {
			c.lr.n = -1
			c.requestError(err)
			return false
		}
	}
	c.lr.n = -1
	if msg := checkRequest(req); msg != "" {
		c.errorResponse(http.StatusBadRequest, msg)
		return false
	}
	req.RemoteAddr = c.remoteAddr
	w := &c.w
	w.reset(req)
	body := req.Body
	if body != http.NoBody {
		if ex := req.Header["Expect"]; len(ex) > 0 {
			if !(len(ex) == 1 && strings.EqualFold(ex[0], "100-continue")) {
				c.errorResponse(http.StatusExpectationFailed, "unsupported Expect header")
				return false
			}
			if req.ProtoAtLeast(1, 1) {
				req.Body = &expectContinue{ReadCloser: body, w: w}
			}
		}
	}
	if !c.runHandler(w, req) {
		return false
	}
	if c.hijacked {
		return false
	}
	if err := w.finish(); err != nil {
		return false
	}
	if w.closeAfter || req.Close || c.srv.shutdown.Load() {
		return false
	}
	// Drain what the handler left of the body, within reason, so that the
	// connection can carry the next request.
	const drainLimit = 256 << 10
	switch body := body.(type) {
	case *fixedBody:
		return body.discard(drainLimit)
	default:
		if body != http.NoBody {
			if n, err := io.CopyN(io.Discard, body, drainLimit); err != io.EOF || n >= drainLimit {
				return false
			}
		}
	}
	return true
}

// runHandler calls the handler, turning a panic into a closed connection.
func (c *conn) runHandler(w *response, req *http.Request) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if r != http.ErrAbortHandler {
				c.srv.logger().Error("handler panicked", "remote", c.remoteAddr, "method", req.Method, "uri", req.RequestURI,
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			}
			if !c.hijacked {
				// Whatever was sent is incomplete: close, so that the
				// client sees the truncation.
				c.bw.Flush()
			}
			ok = false
		}
	}()
	c.srv.Handler.ServeHTTP(w, req)
	return true
}

// checkRequest applies the checks net/http's server makes beyond parsing.
func checkRequest(req *http.Request) string {
	if req.ProtoMajor != 1 {
		return "unsupported protocol version"
	}
	if req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != http.MethodConnect {
		return "missing required Host header"
	}
	if req.Host != "" && !httpguts.ValidHostHeader(req.Host) {
		return "malformed Host header"
	}
	for k, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return "invalid header name"
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return "invalid header value"
			}
		}
	}
	return ""
}

func (c *conn) requestError(err error) {
	switch {
	case c.lr.hit:
		c.errorResponse(http.StatusRequestHeaderFieldsTooLarge, "request header too large")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isTimeoutErr(err):
		// The client went away or stalled: nobody to answer.
	case strings.Contains(err.Error(), "unsupported transfer encoding"):
		c.errorResponse(http.StatusNotImplemented, "unsupported transfer encoding")
	default:
		var ne net.Error
		if errors.As(err, &ne) {
			return
		}
		c.errorResponse(http.StatusBadRequest, err.Error())
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errorResponse answers a request the server could not hand to the handler,
// and the connection closes after it.
func (c *conn) errorResponse(code int, msg string) {
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nDate: %s\r\nContent-Length: %d\r\n\r\n%d %s: %s\n",
		code, http.StatusText(code), httpDate(), len(fmt.Sprintf("%d %s: %s\n", code, http.StatusText(code), msg)), code, http.StatusText(code), msg)
	c.bw.Flush()
}

func (c *conn) release() {
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
	c.br, c.bw = nil, nil
}

// expectContinue sends "100 Continue" before the first read of a body whose
// client waits for it.
type expectContinue struct {
	io.ReadCloser
	w    *response
	sent bool
}

func (e *expectContinue) Read(p []byte) (int, error) {
	if !e.sent {
		e.sent = true
		if !e.w.wroteHeader {
			e.w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := e.w.c.bw.Flush(); err != nil {
				return 0, err
			}
		}
	}
	return e.ReadCloser.Read(p)
}
