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
// A Server bounds what clients can make it hold: header and request line
// sizes, header and idle timeouts, and the number of connections. The
// limits can change while it serves (SetLimits), for configuration reloads.
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
// sets no limit. It is Envoy's default (60 KiB) rounded up, four times
// HAProxy's whole buffer and twice nginx's four 8 KiB buffers: room for large
// cookies and tokens, while a slow client can make the server hold no more
// than this (plus 4 KiB read ahead) for its request.
const DefaultMaxHeaderBytes = 64 << 10

// DefaultMaxRequestLineBytes bounds a request line when the Server sets no
// limit, as nginx (one 8 KiB buffer) and Apache (LimitRequestLine 8190) do.
const DefaultMaxRequestLineBytes = 8192

// Server serves HTTP/1.x connections.
//
// The limit fields (ReadHeaderTimeout through MaxConns) are the limits the
// server starts with; they are read when the server first needs them and
// must not change afterwards. SetLimits changes the limits while serving.
type Server struct {
	// Handler answers every request.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's line and header once
	// its first byte has arrived: the whole header, however steadily its
	// bytes come. A client that takes longer is disconnected without an
	// answer. Zero means no limit.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection, and for the first one. Zero means no limit.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and header (through the
	// blank line), which are answered 431 Request Header Fields Too Large
	// beyond it. Reading stops at most 4 KiB past it. Default
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxRequestLineBytes bounds a request line (method, target and
	// version, without the CRLF), which is answered 414 URI Too Long
	// beyond it. The line counts toward MaxHeaderBytes as well. Default
	// DefaultMaxRequestLineBytes.
	MaxRequestLineBytes int
	// MaxConns bounds the connections the server holds open. At the limit
	// Serve stops accepting until one closes, and new connections wait in
	// the listener's backlog, as with HAProxy's maxconn. A hijacked
	// connection counts until its handler returns. With Serve running on
	// several listeners, the count may pass the limit by one for each
	// listener after the first, as each waits in Accept having found
	// room. Zero means no limit.
	MaxConns int
	// Logger receives handler panics and protocol errors. Default
	// slog.Default().
	Logger *slog.Logger

	limits    atomic.Pointer[Limits] // with defaults applied; nil until first needed
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	connFreed chan struct{} // closed when a connection ends or the limits change, for Serve waiting at MaxConns
	shutdown  atomic.Bool
	done      chan struct{} // closed by Shutdown or Close
}

// Limits are the bounds a Server puts on its clients; the Server fields of
// the same names document them. The zero value of a field means its
// default.
type Limits struct {
	ReadHeaderTimeout   time.Duration
	IdleTimeout         time.Duration
	MaxHeaderBytes      int
	MaxRequestLineBytes int
	MaxConns            int
}

// withDefaults returns a copy of l with the defaults for its zero fields.
func (l Limits) withDefaults() *Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxRequestLineBytes <= 0 {
		l.MaxRequestLineBytes = DefaultMaxRequestLineBytes
	}
	return &l
}

// SetLimits replaces the server's limits while it serves, as a configuration
// reload does. Connections take the new limits for their next request (one
// that arrives after the call, on connections idle or not) and for their
// next wait between requests; a request being read or served keeps the
// limits it started with. Serve applies MaxConns to its next accept, and
// one waiting at the limit accepts again at once when the limit is raised.
// Connections beyond a lowered MaxConns stay open until they end on their
// own. SetLimits is safe to call concurrently with everything else.
func (s *Server) SetLimits(l Limits) {
	s.limits.Store(l.withDefaults())
	s.mu.Lock()
	s.wakeAcceptLocked()
	s.mu.Unlock()
}

// currentLimits returns the limits in force: those of the last SetLimits, or
// the Server fields.
func (s *Server) currentLimits() *Limits {
	if l := s.limits.Load(); l != nil {
		return l
	}
	l := Limits{
		ReadHeaderTimeout:   s.ReadHeaderTimeout,
		IdleTimeout:         s.IdleTimeout,
		MaxHeaderBytes:      s.MaxHeaderBytes,
		MaxRequestLineBytes: s.MaxRequestLineBytes,
		MaxConns:            s.MaxConns,
	}
	// Lose to a concurrent SetLimits, whose limits are the newer.
	s.limits.CompareAndSwap(nil, l.withDefaults())
	return s.limits.Load()
}

// Conns returns how many connections the server holds open: idle, reading
// or serving a request (a hijacked one until its handler returns). It is
// safe to call concurrently with everything else.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
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
		if !s.waitForRoom() {
			return ErrServerClosed
		}
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

// waitForRoom blocks while the server holds MaxConns connections or more,
// leaving new ones in the listener's backlog, where the kernel holds them at
// no cost to the server (and refuses them once the backlog is full, which
// is the client's signal to back off). It reports false when the server
// shuts down meanwhile.
func (s *Server) waitForRoom() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.shutdown.Load() {
			return false
		}
		limit := s.currentLimits().MaxConns
		if limit <= 0 || len(s.conns) < limit {
			return true
		}
		// Sleep until a connection ends or the limits change, each of
		// which closes connFreed.
		if s.connFreed == nil {
			s.connFreed = make(chan struct{})
		}
		freed := s.connFreed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-s.done:
		}
		s.mu.Lock()
	}
}

// wakeAcceptLocked wakes the Serve calls waiting for room. s.mu is held.
func (s *Server) wakeAcceptLocked() {
	if s.connFreed != nil {
		close(s.connFreed)
		s.connFreed = nil
	}
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
	s.wakeAcceptLocked()
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
// been read when n >= 0: the header size limit. While line.on, it follows the
// request line through what it reads, and returns EOF once the line is too
// long. While n >= 0 it keeps the connection's error in err.
type limitedReader struct {
	r    io.Reader
	n    int64
	hit  bool
	line lineLimit
	err  error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		l.hit = true
		return 0, io.EOF
	}
	if l.line.hit {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.line.on {
		l.line.scan(p[:n])
	}
	if err != nil {
		l.err = err
	}
	return n, err
}

// lineLimit follows a request line as its bytes arrive, so that a line too
// long is refused when the limit is passed rather than once the line has
// been read whole: http.ReadRequest reads a line without a bound of its own
// (only the header size limit below it stops it).
type lineLimit struct {
	max  int  // bytes allowed before the CRLF
	seen int  // bytes of the line so far, none of them '\n'
	last byte // the last of them
	on   bool // following a line whose end has not been seen
	hit  bool // the line is longer than max
}

// start begins following a request line of which buffered is the beginning.
func (l *lineLimit) start(limit int, buffered []byte) {
	*l = lineLimit{max: limit, on: true}
	l.scan(buffered)
}

// scan follows the line through p, the next bytes of the request.
func (l *lineLimit) scan(p []byte) {
	if !l.on || len(p) == 0 {
		return
	}
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		l.seen += len(p)
		l.last = p[len(p)-1]
		// A CR at max+1 may yet be the line's end, which does not
		// count; any other byte there makes the line too long.
		if l.seen > l.max+1 || l.seen == l.max+1 && l.last != '\r' {
			l.on, l.hit = false, true
		}
		return
	}
	n := l.seen + i
	if i > 0 {
		l.last = p[i-1]
	}
	if n > 0 && l.last == '\r' {
		n-- // CRLF; net/http also takes a bare LF
	}
	l.on, l.hit = false, n > l.max
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
		lim := c.srv.currentLimits()
		// The header size limit counts from the first byte of the request.
		c.lr.n, c.lr.hit, c.lr.err = int64(lim.MaxHeaderBytes)+4096, false, nil
		if c.br.Buffered() == 0 {
			if d := lim.IdleTimeout; d > 0 {
				// Moving a deadline costs a timer update; under steady
				// load the one set moments ago is good enough, so the
				// idle timeout is kept to within a sixteenth. A deadline
				// further than d away was set for a longer timeout,
				// before SetLimits lowered it.
				now := time.Now()
				if rem := c.readDeadline.Sub(now); rem < d-d/16 || rem > d {
					c.setReadDeadline(now.Add(d))
				}
			} else if !c.readDeadline.IsZero() {
				// Left by a header deadline, a handler, or an idle
				// timeout that SetLimits has removed.
				c.setReadDeadline(time.Time{})
			}
			if _, err := c.br.Peek(1); err != nil {
				return
			}
			// The request that ends a long wait takes the limits set
			// during it.
			if l := c.srv.currentLimits(); l != lim {
				c.lr.n = max(c.lr.n+int64(l.MaxHeaderBytes-lim.MaxHeaderBytes), 0)
				lim = l
			}
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // Shutdown closed it while the request arrived
		}
		// The whole header is usually in the buffer already; only a slow
		// client needs its own deadline. It counts from the first byte and
		// bounds the whole header, not each read, so that a client sending
		// a byte at a time cannot hold the connection for long.
		headerDeadline := false
		if d := lim.ReadHeaderTimeout; d > 0 && !headerBuffered(c.br) {
			c.setReadDeadline(time.Now().Add(d))
			headerDeadline = true
		}
		if !c.serveOne(lim, headerDeadline) {
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

// serveOne reads and answers one request under lim; headerDeadline says
// that the read deadline is the header's. It reports whether the connection
// can carry another request.
func (c *conn) serveOne(lim *Limits, headerDeadline bool) (keepAlive bool) {
	req, fast := c.fastRequest()
	if fast {
		// The fast path takes only a header that was already buffered, so
		// its line was not followed as it arrived.
		if len(req.Method)+len(req.RequestURI)+len(req.Proto)+2 > lim.MaxRequestLineBytes {
			c.lr.n = -1
			c.errorResponse(http.StatusRequestURITooLong, "request line too long")
			return false
		}
		// The limit reader lets a read-ahead past the limit through; the
		// header's own length is exact.
		if c.rs.headLen > lim.MaxHeaderBytes {
			c.lr.n = -1
			c.errorResponse(http.StatusRequestHeaderFieldsTooLarge, "request header too large")
			return false
		}
	} else {
		buffered := c.br.Buffered()
		buf, _ := c.br.Peek(buffered)
		c.lr.line.start(lim.MaxRequestLineBytes, buf)
		left := c.lr.n
		var err error
		if !c.lr.line.hit {
			req, err = http.ReadRequest(c.br)
		}
		c.lr.line.on = false
		if err != nil || c.lr.line.hit {
			c.lr.n = -1
			c.requestError(err)
			return false
		}
		// What ReadRequest consumed: what was buffered, plus what it read,
		// less what is buffered now (the body, or the next request).
		if head := int64(buffered) + left - c.lr.n - int64(c.br.Buffered()); head > int64(lim.MaxHeaderBytes) {
			c.lr.n = -1
			c.errorResponse(http.StatusRequestHeaderFieldsTooLarge, "request header too large")
			return false
		}
	}
	c.lr.n = -1
	if headerDeadline {
		// The header deadline is not the body's: the body gets what a
		// request whose header came at once gets.
		if d := lim.IdleTimeout; d > 0 {
			c.setReadDeadline(time.Now().Add(d))
		} else {
			c.setReadDeadline(time.Time{})
		}
	}
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

// requestError answers a request that could not be read, if there is
// anyone to answer; err may be nil when a limit stopped the reading.
func (c *conn) requestError(err error) {
	switch {
	case c.lr.line.hit:
		c.errorResponse(http.StatusRequestURITooLong, "request line too long")
	case c.lr.hit:
		c.errorResponse(http.StatusRequestHeaderFieldsTooLarge, "request header too large")
	case c.lr.err != nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isTimeoutErr(err):
		// The client went away or stalled: nobody to answer. It may have
		// done so in the middle of a line, which bufio.Reader.ReadLine
		// hands over as if whole (keeping the error for the next read),
		// so that err is a parse error, not the connection's.
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
		code, statusText(code), httpDate(), len(fmt.Sprintf("%d %s: %s\n", code, statusText(code), msg)), code, statusText(code), msg)
	if c.bw.Flush() == nil {
		c.linger()
	}
}

// Bounds of the lingering close.
const (
	lingerTime  = 500 * time.Millisecond // net/http's rstAvoidanceDelay
	lingerBytes = 256 << 10
)

// linger prepares the close of a connection whose client may still be
// sending: a request refused before it was read whole (an over-long line or
// header, say). Closing a socket with unread input sends a reset, and a
// reset can make the client lose the answer before reading it (Windows
// drops what it received but the application has not read; any stack loses
// an answer still to be retransmitted). So the answer is followed by a FIN,
// and the input is read and dropped until the client closes too, for at
// most lingerTime and lingerBytes, as net/http does after a 431 and nginx
// (lingering_close) when the client may be sending more.
func (c *conn) linger() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.setReadDeadline(time.Now().Add(lingerTime))
	io.CopyN(io.Discard, c.nc, lingerBytes)
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
