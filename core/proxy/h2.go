package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/wproxy/wproxy/core/balancer"
)

// H2C forwards a pool's requests over HTTP/2 cleartext with prior knowledge
// (what gRPC servers speak without TLS), with one net/http transport per
// backend address, each multiplexing requests over its connections. Bodies
// stream both ways and trailers pass through. An H2C is safe for concurrent
// use.
type H2C struct {
	connect     time.Duration
	idleTimeout time.Duration
	transports  sync.Map // backend address → *http.Transport
}

// NewH2C returns an H2C whose connections are dialed within connect and
// closed when idle for idleTimeout (0: never).
func NewH2C(connect, idleTimeout time.Duration) *H2C {
	return &H2C{connect: connect, idleTimeout: idleTimeout}
}

// transport returns the transport of the backend at addr.
func (u *H2C) transport(addr string) *http.Transport {
	if t, ok := u.transports.Load(addr); ok {
		return t.(*http.Transport)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	d := &net.Dialer{Timeout: u.connect, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Protocols: &p,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		},
		DisableCompression: true, // relay the backend's encoding as it is
		IdleConnTimeout:    u.idleTimeout,
	}
	if prev, loaded := u.transports.LoadOrStore(addr, t); loaded {
		return prev.(*http.Transport)
	}
	return t
}

// Close closes the idle connections of every backend; requests in flight
// finish.
func (u *H2C) Close() {
	u.transports.Range(func(_, t any) bool {
		t.(*http.Transport).CloseIdleConnections()
		return true
	})
}

// dialError is a failure to connect to a backend.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// errHeaderTimeout ends a request whose response header is late.
var errHeaderTimeout = errors.New("response header timeout")

// bodyReader records the error of reading the client's body, so that a
// failure of the client is not held against the backend.
type bodyReader struct {
	io.ReadCloser
	mu  sync.Mutex
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

func (b *bodyReader) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// h2RequestSkip are client headers not sent to an h2c backend: hop-by-hop
// ones (RFC 9110 §7.6.1), and those the proxy writes itself.
var h2RequestSkip = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Expect": true, "Host": true,
	"X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Forwarded-Host": true,
}

// h2ResponseSkip are backend headers not relayed to the client.
var h2ResponseSkip = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// namedIn reports whether a comma-separated header value lists name.
func namedIn(vs []string, name string) bool {
	for _, v := range vs {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), name) {
				return true
			}
		}
	}
	return false
}

// forwardH2 is forward for an h2c pool: it sends the request to b over
// HTTP/2 and relays the answer, its body flushed as it arrives and its
// trailers after it. An idempotent request without a body goes once to
// another backend when b could not be reached.
func (h *Handler) forwardH2(w http.ResponseWriter, r *http.Request, tm *Timeouts, pool *balancer.Pool, u *H2C, b *balancer.Backend, now time.Time, o *outcome) {
	defer func() { pool.Done(b) }() // b changes on a retry
	proto := h.proto
	if r.TLS != nil {
		proto = "https"
	}
	hdr := make(http.Header, len(r.Header)+4)
	conn := r.Header["Connection"]
	for k, vs := range r.Header {
		if h2RequestSkip[k] || (len(conn) > 0 && namedIn(conn, k)) {
			continue
		}
		hdr[k] = vs
	}
	if te := r.Header["Te"]; len(te) > 0 && namedIn(te, "trailers") {
		hdr["Te"] = []string{"trailers"}
	}
	hdr["X-Forwarded-For"] = []string{forwardedFor(r)}
	hdr["X-Forwarded-Proto"] = []string{proto}
	hdr["X-Forwarded-Host"] = []string{r.Host}
	if _, ok := hdr["User-Agent"]; !ok {
		hdr["User-Agent"] = []string{""} // net/http would add its own
	}

	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	var body *bodyReader
	if hasBody {
		var rc io.ReadCloser = r.Body
		if tm.ClientBody > 0 {
			ctl := http.NewResponseController(w)
			rc = &deadlineBody{ReadCloser: r.Body, rc: ctl, d: tm.ClientBody}
			defer ctl.SetReadDeadline(time.Time{})
		}
		body = &bodyReader{ReadCloser: io.NopCloser(rc)}
	}

	cancel := context.CancelCauseFunc(func(error) {})
	defer func() { cancel(nil) }() // also when relaying panics
	for retried := false; ; retried = true {
		o.backend = b
		ctx, cancelAttempt := context.WithCancelCause(r.Context())
		cancel = cancelAttempt
		target := *r.URL
		target.Scheme, target.Host = "http", b.Address
		out := &http.Request{
			Method:        r.Method,
			URL:           &target,
			Proto:         "HTTP/2.0",
			ProtoMajor:    2,
			Header:        hdr,
			Host:          r.Host,
			ContentLength: r.ContentLength,
			Body:          http.NoBody,
			Trailer:       r.Trailer,
		}
		if hasBody {
			out.Body = body
		} else {
			out.ContentLength = 0
		}
		out = out.WithContext(ctx)
		var timer *time.Timer
		if tm.ResponseHeader > 0 {
			timer = time.AfterFunc(time.Until(now.Add(tm.ResponseHeader)), func() { cancelAttempt(errHeaderTimeout) })
		}
		resp, err := u.transport(b.Address).RoundTrip(out)
		if timer != nil {
			timer.Stop()
		}
		if err == nil && context.Cause(ctx) == errHeaderTimeout {
			resp.Body.Close()
			resp, err = nil, errHeaderTimeout
		}
		if err == nil {
			pool.Report(b, resp.StatusCode < 500 || !pool.Count5xx(), "")
			b.ObserveLatency(time.Since(now))
			o.status = resp.StatusCode
			h.relayH2(w, r, b, resp)
			return
		}
		cause := context.Cause(ctx)
		cancel(nil)
		var de *dialError
		switch {
		case body != nil && body.failed() != nil:
			if isTimeout(body.failed()) {
				o.status = h.fail(w, r, http.StatusRequestTimeout, nil, "the client paused sending the body for longer than %s", tm.ClientBody)
			}
			return
		case r.Context().Err() != nil:
			return // the client went away
		case cause == errHeaderTimeout:
			pool.Report(b, false, "no response within the response header timeout")
			o.status = h.fail(w, r, http.StatusGatewayTimeout, err, "backend %s did not respond within %s", b.Address, tm.ResponseHeader)
			return
		}
		pool.Report(b, false, err.Error())
		if errors.As(err, &de) {
			if !retried && !hasBody && idempotent(r.Method) && !isTimeout(err) {
				if other, perr := pool.PickOther(r, now, b); perr == nil {
					h.logf(slog.LevelDebug, "retrying on another backend", "from", b.Address, "to", other.Address, "err", err)
					pool.Done(b)
					b = other
					continue
				}
			}
			o.status = h.failDial(w, r, b, de.err)
			return
		}
		o.status = h.fail(w, r, http.StatusBadGateway, err, "backend %s: %v", b.Address, err)
		return
	}
}

// relayH2 writes an HTTP/2 response to the client: the header, the body
// flushed as it arrives (gRPC streams), and the trailers.
func (h *Handler) relayH2(w http.ResponseWriter, r *http.Request, b *balancer.Backend, resp *http.Response) {
	defer resp.Body.Close()
	dst := w.Header()
	conn := resp.Header["Connection"]
	for k, vs := range resp.Header {
		if h2ResponseSkip[k] || (len(conn) > 0 && namedIn(conn, k)) {
			continue
		}
		dst[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	// The header is not flushed on its own: a response without a body
	// (such as gRPC's trailers-only answer) must reach the client as one
	// header block that ends the stream.
	flusher, _ := w.(http.Flusher)
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client is gone
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if r.Context().Err() != nil {
				return
			}
			h.logf(slog.LevelWarn, "backend dropped the response body", "backend", b.Address, "path", r.URL.Path, "err", rerr)
			// Abort the client's response so that the truncation shows.
			panic(http.ErrAbortHandler)
		}
	}
	for k, vs := range resp.Trailer {
		dst[http.TrailerPrefix+k] = vs
	}
}
