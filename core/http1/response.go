package http1

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// response is the http.ResponseWriter of one request; a connection reuses
// one for every request it carries. It implements http.Flusher and
// http.Hijacker, and the deadline methods of http.ResponseController.
type response struct {
	c           *conn
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool
	chunked     bool
	noBody      bool
	closeAfter  bool
	declared    int64 // Content-Length the handler set, or -1
	written     int64
	scratch     [32]byte
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
	_ http.Hijacker       = (*response)(nil)
)

func (w *response) reset(req *http.Request) {
	clear(w.header)
	*w = response{c: w.c, req: req, header: w.header, declared: -1}
}

func (w *response) Header() http.Header { return w.header }

// WriteHeader sends the status line and header. 1xx codes other than 101
// are sent at once and may be followed by the final status.
func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	w.writeHeader()
}

func (w *response) writeInformational(code int) {
	bw := w.c.bw
	w.statusLine(code)
	for k, vs := range w.header {
		for _, v := range vs {
			writeField(bw, k, v)
		}
	}
	bw.WriteString("\r\n")
	bw.Flush()
	clear(w.header)
}

func (w *response) statusLine(code int) {
	bw := w.c.bw
	if w.req.ProtoAtLeast(1, 1) {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	bw.Write(strconv.AppendInt(w.scratch[:0], int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(statusText(code))
	bw.WriteString("\r\n")
}

// statusText is the reason phrase of a status code: RFC 9110's for 414,
// for which net/http keeps RFC 2616's "Request-URI Too Long", and
// http.StatusText's otherwise.
func statusText(code int) string {
	if code == http.StatusRequestURITooLong {
		return "URI Too Long"
	}
	return http.StatusText(code)
}

func (w *response) writeHeader() {
	bw := w.c.bw
	h := w.header
	code := w.status
	req := w.req
	w.noBody = req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified || code == http.StatusSwitchingProtocols
	if cl := h["Content-Length"]; len(cl) > 0 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.declared = n
		} else {
			delete(h, "Content-Length")
		}
	}
	if code == http.StatusNoContent || code == http.StatusNotModified {
		delete(h, "Content-Length")
		delete(h, "Transfer-Encoding")
		w.declared = -1
	}
	delete(h, "Transfer-Encoding")
	var trailers []string
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			trailers = append(trailers, k)
		}
	}
	if declared := h["Trailer"]; len(declared) > 0 {
		trailers = append(trailers, declared...)
	}
	wantsClose := req.Close || w.c.srv.shutdown.Load()
	switch {
	case w.noBody || w.declared >= 0 || code == http.StatusSwitchingProtocols:
	case req.ProtoAtLeast(1, 1):
		w.chunked = true
	default:
		// HTTP/1.0 without a length: the body ends when the connection does.
		w.closeAfter = true
	}
	if len(trailers) > 0 && !w.chunked {
		delete(h, "Trailer")
	}
	if wantsClose {
		w.closeAfter = true
	}
	w.statusLine(code)
	for k, vs := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || k == "Connection" && code != http.StatusSwitchingProtocols {
			continue
		}
		for _, v := range vs {
			writeField(bw, k, v)
		}
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if code != http.StatusSwitchingProtocols {
		switch {
		case w.closeAfter:
			bw.WriteString("Connection: close\r\n")
		case !req.ProtoAtLeast(1, 1):
			bw.WriteString("Connection: keep-alive\r\n")
		}
	}
	bw.WriteString("\r\n")
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// ErrBodyNotAllowed is returned by Write for a response that has no body.
var ErrBodyNotAllowed = http.ErrBodyNotAllowed

// errTooLong is returned by Write past the declared Content-Length.
var errTooLong = errors.New("http1: wrote more than the declared Content-Length")

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		w.closeAfter = true
		return 0, errTooLong
	}
	w.written += int64(len(p))
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, err := bw.WriteString("\r\n")
		return len(p), err
	}
	return bw.Write(p)
}

// Flush sends what is buffered to the client.
func (w *response) Flush() {
	w.FlushError()
}

// FlushError is Flush returning its error, for http.ResponseController.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.c.bw.Flush()
}

// finish completes the response after the handler returned: the header if
// none was sent, the last chunk and trailers, and a flush.
func (w *response) finish() error {
	if w.c.hijacked {
		return nil
	}
	if !w.wroteHeader {
		if w.declared < 0 && w.header["Content-Length"] == nil && w.status == 0 {
			// Nothing written at all: an empty 200.
			w.header["Content-Length"] = []string{"0"}
		}
		w.WriteHeader(http.StatusOK)
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for k, vs := range w.header {
			name, ok := strings.CutPrefix(k, http.TrailerPrefix)
			if !ok {
				continue
			}
			for _, v := range vs {
				writeField(bw, http.CanonicalHeaderKey(name), v)
			}
		}
		for _, k := range w.header["Trailer"] {
			for _, v := range w.header[http.CanonicalHeaderKey(k)] {
				writeField(bw, http.CanonicalHeaderKey(k), v)
			}
		}
		bw.WriteString("\r\n")
	}
	if w.declared >= 0 && w.written < w.declared && !w.noBody {
		// The handler wrote less than it declared: the client must not
		// take the connection for another request.
		bw.Flush()
		return errors.New("http1: handler wrote less than the declared Content-Length")
	}
	return bw.Flush()
}

// Hijack hands the connection to the handler, with the server's buffered
// reader and writer (the reader may hold bytes sent after the request).
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	c.hijacked = true
	c.nc.SetDeadline(time.Time{})
	c.readDeadline = time.Time{}
	br, bw := c.br, c.bw
	c.br, c.bw = nil, nil
	// The reader reads through the header size limiter, which is off
	// between requests, so it reads the connection without limit.
	return c.nc, bufio.NewReadWriter(br, bw), nil
}

// SetReadDeadline sets the connection's read deadline, for
// http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error { return w.c.setReadDeadline(t) }

// SetWriteDeadline sets the connection's write deadline, for
// http.ResponseController.
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// cachedDate holds the Date header value of the current second.
var cachedDate atomic.Pointer[dateValue]

type dateValue struct {
	unix int64
	s    string
}

// httpDate returns the current time in the format of the Date header,
// formatting it at most once a second.
func httpDate() string {
	now := time.Now()
	if d := cachedDate.Load(); d != nil && d.unix == now.Unix() {
		return d.s
	}
	d := &dateValue{unix: now.Unix(), s: now.UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.s
}
