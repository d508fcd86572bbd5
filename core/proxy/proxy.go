// Package proxy is wproxy's HTTP handler: it routes a request to a pool, has
// the pool's module pick a backend, and relays the request and response over
// the backend's pooled connections, streaming bodies both ways.
//
// Failures are answered with one line naming the cause: 404 when no route
// matches, 503 when the pool has no backend, 502 when the backend refuses,
// drops or garbles, 504 when it times out. A Handler is safe for concurrent
// use.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wproxy/wproxy/core/balancer"
	"github.com/wproxy/wproxy/core/metrics"
	"github.com/wproxy/wproxy/core/upstream"
)

// Timeouts are the handler's time limits; see config.Timeouts.
type Timeouts struct {
	ResponseHeader time.Duration
	ClientBody     time.Duration
}

// Table is what a Handler serves: its routes and timeouts. A reload gives a
// Handler a new Table; requests in flight finish with the one they started
// with.
type Table struct {
	Router   *Router
	Timeouts Timeouts
	// NoRoute counts the requests no route matched; nil counts nothing.
	NoRoute *metrics.Series
}

// Handler proxies requests. Create it with New.
type Handler struct {
	table   atomic.Pointer[Table]
	proto   string // "http" or "https", for X-Forwarded-Proto
	logger  *slog.Logger
	lastLog atomic.Int64
	dropped atomic.Int64
	tunnels tunnels
}

// New returns a handler serving t.
func New(t *Table, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.Default()
	}
	h := &Handler{proto: "http", logger: logger}
	h.table.Store(t)
	return h
}

// SetTable makes t the handler's table for the requests that start from now.
func (h *Handler) SetTable(t *Table) { h.table.Store(t) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// One reading of the clock serves the pick's figures, the pool's idle
	// bookkeeping, the response header deadline and the request's metrics.
	now := time.Now()
	tab := h.table.Load()
	route := tab.Router.Match(r.Host, r.URL.Path)
	if route == nil {
		status := h.fail(w, r, http.StatusNotFound, nil, "no route for host %q and path %q", r.Host, r.URL.Path)
		tab.NoRoute.Observe(status, time.Since(now))
		return
	}
	b, err := route.Pool.Pick(r, now)
	if err != nil {
		status := h.fail(w, r, http.StatusServiceUnavailable, nil, "pool %s: %v", route.Pool.Name, err)
		route.Series.For(nil).Observe(status, time.Since(now))
		return
	}
	var o outcome
	// Deferred, so that a response cut short (the handler panics with
	// http.ErrAbortHandler) is counted too.
	defer func() { route.Series.For(o.backend).Observe(o.status, time.Since(now)) }()
	if route.H2C != nil {
		h.forwardH2(w, r, &tab.Timeouts, route.Pool, route.H2C, b, now, &o)
		return
	}
	h.forward(w, r, &tab.Timeouts, route.Pool, b, now, &o)
}

// outcome is what became of a request: the status it was answered with (0:
// none, the client left) and the backend that answered.
type outcome struct {
	status  int
	backend *balancer.Backend
}

// aLongTimeAgo is a deadline that makes pending I/O return at once.
var aLongTimeAgo = time.Unix(1, 0)

// forward sends the request to b and relays the answer. Outcomes feed the
// pool's passive checks. An idempotent request without a body that b did not
// answer at all (refused, reset, closed before a byte of response) goes once
// to another backend. forward ends b's accounting (Done) and says in o what
// became of the request.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, tm *Timeouts, pool *balancer.Pool, b *balancer.Backend, now time.Time, o *outcome) {
	defer func() { pool.Done(b) }() // b changes on a retry
	ctx := r.Context()
	proto := h.proto
	if r.TLS != nil {
		proto = "https"
	}
	req := upstream.Request{Request: r, ForwardedFor: forwardedFor(r), Proto: proto}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	if hasBody && tm.ClientBody > 0 {
		rc := http.NewResponseController(w)
		req.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, d: tm.ClientBody}
		defer rc.SetReadDeadline(time.Time{})
	}
	for retried := false; ; retried = true {
		o.backend = b
		conn, resp, err, dialed := h.exchange(ctx, tm, &req, b, now, hasBody, w.Header())
		if err == nil {
			pool.Report(b, resp.StatusCode < 500 || !pool.Count5xx(), "")
			b.ObserveLatency(time.Since(now))
			o.status = resp.StatusCode
			if resp.StatusCode == http.StatusSwitchingProtocols {
				o.status = h.tunnel(w, r, b, conn)
				return
			}
			h.relay(w, r, b, conn, resp, now)
			return
		}
		clear(w.Header())
		var cbe *upstream.ClientBodyError
		switch {
		case errors.As(err, &cbe):
			if isTimeout(cbe.Err) {
				o.status = h.fail(w, r, http.StatusRequestTimeout, nil, "the client paused sending the body for longer than %s", tm.ClientBody)
			}
			// Otherwise the client is gone or sent a broken body: there
			// is nobody to answer, and nothing to hold against b.
			return
		case ctx.Err() != nil:
			return // the client went away
		}
		pool.Report(b, false, err.Error())
		unanswered := !dialed || upstream.IsNoResponse(err) || isReset(err) || errors.Is(err, io.ErrUnexpectedEOF)
		if !retried && !hasBody && idempotent(r.Method) && unanswered && !isTimeout(err) {
			if other, perr := pool.PickOther(r, now, b); perr == nil {
				h.logf(slog.LevelDebug, "retrying on another backend", "from", b.Address, "to", other.Address, "err", err)
				pool.Done(b)
				b = other
				continue
			}
		}
		if dialed {
			o.status = h.failUpstream(w, r, tm, b, err)
		} else {
			o.status = h.failDial(w, r, b, err)
		}
		return
	}
}

// exchange sends the request to b and reads the response header, on a
// pooled connection or, when a reused one turns out to be closed, once more
// on a new one. dialed is false when no connection could be made.
func (h *Handler) exchange(ctx context.Context, tm *Timeouts, req *upstream.Request, b *balancer.Backend, now time.Time, hasBody bool, dst http.Header) (conn *upstream.Conn, resp *upstream.Response, err error, dialed bool) {
	for attempt := 0; ; attempt++ {
		if attempt == 0 {
			conn, err = b.Conns.Get(ctx, now)
		} else {
			conn, err = b.Conns.Dial(ctx)
		}
		if err != nil {
			return nil, nil, err, false
		}
		resp, err = h.roundTrip(ctx, tm, conn, req, dst, now)
		if err == nil {
			return conn, resp, nil, true
		}
		conn.Close()
		// A reused connection the backend had closed: an idempotent request
		// without a body can go again on a new connection.
		if attempt == 0 && conn.Reused && !hasBody && idempotent(req.Method) && (upstream.IsNoResponse(err) || isReset(err)) && ctx.Err() == nil {
			clear(dst)
			continue
		}
		return nil, nil, err, true
	}
}

// roundTrip sends the request and reads the response header, giving up when
// the client goes away.
func (h *Handler) roundTrip(ctx context.Context, tm *Timeouts, conn *upstream.Conn, req *upstream.Request, dst http.Header, now time.Time) (*upstream.Response, error) {
	nc := conn.NetConn()
	// Over HTTP/2 the request's context ends when the client goes away;
	// over wproxy's HTTP/1.1 server it never does, and the wait is bounded
	// by the response header timeout alone.
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { nc.SetDeadline(aLongTimeAgo) })
	}
	if err := conn.WriteRequest(req); err != nil {
		stop()
		return nil, err
	}
	if tm.ResponseHeader > 0 {
		nc.SetReadDeadline(now.Add(tm.ResponseHeader))
	}
	resp, err := conn.ReadResponse(req.Method, dst)
	if !stop() {
		return nil, fmt.Errorf("the client went away: %w", context.Cause(ctx))
	}
	if err != nil {
		return nil, err
	}
	// The header deadline must not cut a long body short; when the body
	// is already buffered no read can block, and the next request on this
	// connection sets its own deadline, so the reset is saved.
	if tm.ResponseHeader > 0 && (resp.ContentLength < 0 || int64(conn.Buffered()) < resp.ContentLength) {
		nc.SetReadDeadline(time.Time{})
	}
	return resp, nil
}

// relay writes the response to the client and puts the connection back when
// it can serve another request.
func (h *Handler) relay(w http.ResponseWriter, r *http.Request, b *balancer.Backend, conn *upstream.Conn, resp *upstream.Response, now time.Time) {
	w.WriteHeader(resp.StatusCode)
	stream := resp.ContentLength < 0 || strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream")
	flusher, _ := w.(http.Flusher)
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	buf := *bp
	body := resp.Body()
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				// The client is gone; the rest of the body cannot be
				// relayed, so the connection cannot be reused.
				conn.Close()
				return
			}
			if stream && flusher != nil && conn.Buffered() == 0 {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			conn.Close()
			h.logf(slog.LevelWarn, "backend dropped the response body", "backend", b.Address, "path", r.URL.Path, "err", rerr)
			// Abort the client's response so that the truncation shows.
			panic(http.ErrAbortHandler)
		}
	}
	for k, vs := range resp.Trailer {
		w.Header()[http.TrailerPrefix+k] = vs
	}
	if resp.Close {
		conn.Close()
	} else {
		b.Conns.Put(conn, now)
	}
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// deadlineBody extends the client connection's read deadline before every
// read of the request body, so that a client that pauses longer than the
// limit is cut off while a slow but steady upload goes on.
type deadlineBody struct {
	io.ReadCloser
	rc *http.ResponseController
	d  time.Duration
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.d))
	return b.ReadCloser.Read(p)
}

// idempotent reports whether a method is idempotent (RFC 9110 §9.2.2), so
// that a request can be sent again when it may or may not have arrived.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// forwardedFor returns the X-Forwarded-For value to send: the client's
// chain, if any, with the client's address appended.
func forwardedFor(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	prior := r.Header["X-Forwarded-For"]
	if len(prior) == 0 {
		return ip
	}
	return strings.Join(prior, ", ") + ", " + ip
}

func (h *Handler) failDial(w http.ResponseWriter, r *http.Request, b *balancer.Backend, err error) int {
	if isTimeout(err) {
		return h.fail(w, r, http.StatusGatewayTimeout, err, "backend %s: connect timed out", b.Address)
	}
	return h.fail(w, r, http.StatusBadGateway, err, "backend %s: %v", b.Address, err)
}

// failUpstream answers for a backend that failed, and returns the status
// (0 when the client is gone and nobody reads the answer).
func (h *Handler) failUpstream(w http.ResponseWriter, r *http.Request, tm *Timeouts, b *balancer.Backend, err error) int {
	var pe *upstream.ProtocolError
	switch {
	case r.Context().Err() != nil:
		return 0
	case isTimeout(err):
		return h.fail(w, r, http.StatusGatewayTimeout, err, "backend %s did not respond within %s", b.Address, tm.ResponseHeader)
	case errors.As(err, &pe):
		return h.fail(w, r, http.StatusBadGateway, err, "backend %s sent an invalid response: %v", b.Address, pe)
	case upstream.IsNoResponse(err) || isReset(err) || errors.Is(err, io.ErrUnexpectedEOF):
		return h.fail(w, r, http.StatusBadGateway, err, "backend %s closed the connection before responding", b.Address)
	}
	return h.fail(w, r, http.StatusBadGateway, err, "backend %s: %v", b.Address, err)
}

// fail answers with status and a one-line reason, and logs it (at most one
// line a second, with a count of the lines left out). It returns status.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, cause error, format string, args ...any) int {
	msg := fmt.Sprintf(format, args...)
	hdr := w.Header()
	clear(hdr)
	hdr["Content-Type"] = []string{"text/plain; charset=utf-8"}
	hdr["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d %s: %s\n", status, http.StatusText(status), msg)
	level := slog.LevelWarn
	if status < 500 {
		level = slog.LevelDebug
	}
	h.logf(level, msg, "status", status, "method", r.Method, "host", r.Host, "path", r.URL.Path)
	return status
}

func (h *Handler) logf(level slog.Level, msg string, args ...any) {
	if !h.logger.Enabled(context.Background(), level) {
		return
	}
	now := time.Now().UnixNano()
	last := h.lastLog.Load()
	if now-last < int64(time.Second) || !h.lastLog.CompareAndSwap(last, now) {
		h.dropped.Add(1)
		return
	}
	if n := h.dropped.Swap(0); n > 0 {
		args = append(args, "similar_lines_dropped", n)
	}
	h.logger.Log(context.Background(), level, msg, args...)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func isReset(err error) bool {
	return errors.Is(err, errConnReset) || errors.Is(err, errBrokenPipe)
}
