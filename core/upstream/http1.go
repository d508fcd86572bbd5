package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"github.com/wproxy/wproxy/core/httpsyntax"
)

// MaxResponseHeaderBytes bounds a response header, status line included.
const MaxResponseHeaderBytes = 256 << 10

// ClientBodyError wraps a failure to read the request body from the client,
// so that the caller does not blame the backend for it.
type ClientBodyError struct{ Err error }

func (e *ClientBodyError) Error() string { return "reading the request body: " + e.Err.Error() }
func (e *ClientBodyError) Unwrap() error { return e.Err }

// ProtocolError is a response the proxy cannot relay: a malformed status
// line or header, or a header past MaxResponseHeaderBytes.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return e.Msg }

// Request is what WriteRequest sends.
type Request struct {
	*http.Request
	// ForwardedFor is the X-Forwarded-For value to send: the client's chain
	// with the client's address appended.
	ForwardedFor string
	// Proto is the X-Forwarded-Proto value: "http" or "https".
	Proto string
}

// hopHeaders are removed when relaying in either direction (RFC 9110 §7.6.1),
// with those named by the Connection header.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// skipOnRequest are client headers the proxy writes itself or drops.
var skipOnRequest = map[string]bool{
	"Content-Length": true, "Expect": true, "X-Forwarded-For": true, "X-Forwarded-Proto": true,
	"X-Forwarded-Host": true,
}

// WriteRequest sends the request line, header and body, and flushes. It
// writes hop-by-hop headers only for an upgrade (Connection: upgrade and the
// Upgrade header) and "TE: trailers". A body of unknown length is sent
// chunked. A *ClientBodyError means the client, not the backend, failed.
func (c *Conn) WriteRequest(r *Request) error {
	bw := c.bw
	uri := r.RequestURI
	if uri == "" || r.URL.IsAbs() {
		uri = r.URL.RequestURI()
	}
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	for k, vs := range r.Header {
		if hopHeaders[k] || skipOnRequest[k] || (len(conn) > 0 && namedIn(conn, k)) {
			continue
		}
		for _, v := range vs {
			writeField(bw, k, v)
		}
	}
	if te := r.Header["Te"]; len(te) > 0 && namedIn(te, "trailers") {
		writeField(bw, "Te", "trailers")
	}
	upgrade := r.Header.Get("Upgrade")
	if upgrade != "" && namedIn(conn, "Upgrade") {
		writeField(bw, "Connection", "Upgrade")
		writeField(bw, "Upgrade", upgrade)
	}
	if r.ForwardedFor != "" {
		writeField(bw, "X-Forwarded-For", r.ForwardedFor)
	}
	writeField(bw, "X-Forwarded-Proto", r.Proto)
	writeField(bw, "X-Forwarded-Host", r.Host)
	body := r.Body
	if body == http.NoBody {
		body = nil
	}
	chunked := false
	switch {
	case r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(c.scratch[:0], r.ContentLength, 10))
		bw.WriteString("\r\n")
	case r.ContentLength < 0 && body != nil:
		chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case len(r.Header["Content-Length"]) > 0 || r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
		body = nil
	default:
		body = nil
	}
	bw.WriteString("\r\n")
	if body != nil {
		if err := c.writeBody(body, chunked, r.ContentLength); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (c *Conn) writeBody(body io.Reader, chunked bool, length int64) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var w io.Writer = c.bw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(c.bw)
		w = cw
	}
	var sent int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			sent += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return &ClientBodyError{rerr}
		}
	}
	if !chunked && sent != length {
		return &ClientBodyError{fmt.Errorf("body ended after %d of %d bytes", sent, length)}
	}
	if cw != nil {
		if err := cw.Close(); err != nil {
			return err
		}
		_, err := c.bw.WriteString("\r\n")
		return err
	}
	return nil
}

// namedIn reports whether a comma-separated header value list contains the
// token name, case-insensitively.
func namedIn(values []string, name string) bool {
	for _, v := range values {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(textproto.TrimString(tok), name) {
				return true
			}
		}
	}
	return false
}

// Response is the header and framing of a backend's response.
type Response struct {
	StatusCode int
	// ContentLength is the body's length, or -1 when it is chunked or runs
	// until the connection closes.
	ContentLength int64
	// Close reports that the connection cannot serve another request.
	Close bool
	// Trailer holds the trailer fields of a chunked body once it has been
	// read to its end; nil when there were none.
	Trailer http.Header

	chunked bool
	noBody  bool
	body    bodyReader
}

// ReadResponse reads a response header for a request of the given method,
// skipping interim 1xx responses other than 101, and adds the end-to-end
// fields to dst. The Response and its body belong to the connection and are
// valid until its next request.
func (c *Conn) ReadResponse(method string, dst http.Header) (*Response, error) {
	for {
		resp, err := c.readHeader(method, dst)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		clear(dst)
	}
}

func (c *Conn) readHeader(method string, dst http.Header) (*Response, error) {
	br := c.br
	total := 0
	line, err := readLine(br, &total)
	if err != nil {
		return nil, err
	}
	resp := &c.resp
	*resp = Response{ContentLength: -1}
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return nil, &ProtocolError{fmt.Sprintf("malformed status line %q", truncate(line))}
	}
	http10 := line[7] == '0'
	code := 0
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return nil, &ProtocolError{fmt.Sprintf("malformed status code in %q", truncate(line))}
		}
		code = code*10 + int(d-'0')
	}
	if code < 100 {
		return nil, &ProtocolError{fmt.Sprintf("status code %d out of range", code)}
	}
	resp.StatusCode = code

	var (
		connTokens []string
		te         string
		haveCL     bool
		keepAlive  bool
	)
	// End-to-end fields are collected in the connection's scratch buffer
	// and turned into strings with one allocation for all their values.
	fields := c.fields[:0]
	raw := c.raw[:0]
	for {
		line, err := readLine(br, &total)
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, &ProtocolError{"obsolete line folding in the response header"}
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, &ProtocolError{fmt.Sprintf("malformed header line %q", truncate(line))}
		}
		name := line[:colon]
		if !httpsyntax.ValidToken(name) {
			return nil, &ProtocolError{fmt.Sprintf("malformed header name %q", truncate(name))}
		}
		httpsyntax.Canonicalize(name)
		value := bytes.TrimSpace(line[colon+1:])
		if bytes.IndexByte(value, '\r') >= 0 || bytes.IndexByte(value, 0) >= 0 {
			return nil, &ProtocolError{fmt.Sprintf("invalid byte in the value of %s", name)}
		}
		switch string(name) {
		case "Connection":
			for _, tok := range strings.Split(string(value), ",") {
				tok = textproto.TrimString(tok)
				switch {
				case strings.EqualFold(tok, "close"):
					resp.Close = true
				case strings.EqualFold(tok, "keep-alive"):
					keepAlive = true
				case tok != "":
					connTokens = append(connTokens, textproto.CanonicalMIMEHeaderKey(tok))
				}
			}
			continue
		case "Transfer-Encoding":
			te = string(value)
			continue
		case "Content-Length":
			n, ok := httpsyntax.ParseLength(value)
			if !ok {
				return nil, &ProtocolError{fmt.Sprintf("invalid Content-Length %q", truncate(value))}
			}
			if haveCL {
				if n != resp.ContentLength {
					return nil, &ProtocolError{"conflicting Content-Length values"}
				}
				continue
			}
			haveCL = true
			resp.ContentLength = n
			// Kept as a field: relayed unless the framing says otherwise.
		case "Upgrade":
			if code != http.StatusSwitchingProtocols {
				continue
			}
		default:
			if hopHeaders[string(name)] {
				continue
			}
		}
		f := field{key: commonKeys[string(name)], off: len(raw)}
		if f.key == "" {
			f.keyOff = len(raw)
			raw = append(raw, name...)
			f.off = len(raw)
		}
		raw = append(raw, value...)
		f.end = len(raw)
		if f.key == "" {
			f.keyEnd = f.off
		}
		fields = append(fields, f)
	}
	if len(fields) > 0 {
		str := string(raw)
		vals := make([]string, len(fields))
		for i, f := range fields {
			key := f.key
			if key == "" {
				key = str[f.keyOff:f.keyEnd]
			}
			vals[i] = str[f.off:f.end]
			if prev, ok := dst[key]; ok {
				dst[key] = append(prev, vals[i])
			} else {
				dst[key] = vals[i : i+1 : i+1]
			}
		}
	}
	c.fields, c.raw = fields[:0], raw[:0]
	for _, k := range connTokens {
		if k != "Upgrade" || code != http.StatusSwitchingProtocols {
			delete(dst, k)
		}
	}
	if http10 && !keepAlive {
		resp.Close = true
	}
	resp.body = bodyReader{c: c, resp: resp}
	if code == http.StatusSwitchingProtocols {
		dst["Connection"] = []string{"Upgrade"}
		resp.Close = true
		resp.noBody = true
		return resp, nil
	}
	switch {
	case method == http.MethodHead || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified:
		resp.noBody = true
		if method != http.MethodHead {
			delete(dst, "Content-Length")
		}
		resp.ContentLength = 0
	case te != "":
		// RFC 9112 §6.3: Transfer-Encoding overrides Content-Length;
		// chunked must be the final coding, otherwise the body runs until
		// the connection closes.
		delete(dst, "Content-Length")
		if !http10 && strings.EqualFold(textproto.TrimString(lastToken(te)), "chunked") {
			resp.chunked = true
		} else {
			resp.Close = true
		}
		resp.ContentLength = -1
	case haveCL:
	default:
		resp.Close = true
	}
	resp.body.remaining = resp.ContentLength
	if resp.chunked {
		resp.body.chunked = httputil.NewChunkedReader(br)
	}
	return resp, nil
}

// field locates one header field in the scratch buffer; key is set when
// the name is a common one, interned.
type field struct {
	key            string
	keyOff, keyEnd int
	off, end       int
}

func lastToken(s string) string {
	if i := strings.LastIndexByte(s, ','); i >= 0 {
		return s[i+1:]
	}
	return s
}

// readLine returns one header line without its line ending, counting bytes
// against MaxResponseHeaderBytes. The slice is valid until the next read.
func readLine(br *bufio.Reader, total *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, &ProtocolError{fmt.Sprintf("a response header line is longer than %d bytes", readBufferSize)}
	}
	if err != nil {
		if err == io.EOF && *total == 0 && len(line) == 0 {
			return nil, errNoResponse
		}
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	*total += len(line)
	if *total > MaxResponseHeaderBytes {
		return nil, &ProtocolError{fmt.Sprintf("the response header is larger than %d bytes", MaxResponseHeaderBytes)}
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// errNoResponse means the backend closed the connection without sending a
// byte of the response: on a reused connection, a request that is safe to
// send again may be retried on a new one.
var errNoResponse = errors.New("the backend closed the connection without responding")

// IsNoResponse reports whether err means that the backend closed the
// connection before any byte of a response.
func IsNoResponse(err error) bool { return errors.Is(err, errNoResponse) }

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// commonKeys interns frequent header names so that relaying them allocates
// no key string (a lookup with a []byte conversion does not allocate).
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Cache-Control", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Location", "Content-Range",
		"Content-Security-Policy", "Content-Type", "Date", "Etag", "Expires", "Last-Modified", "Link",
		"Location", "Retry-After", "Server", "Set-Cookie", "Strict-Transport-Security", "Vary", "Via",
		"Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options", "X-Request-Id", "X-Demo-Backend",
	} {
		m[k] = k
	}
	return m
}()

// Body returns the reader of the response body. It returns io.EOF at the
// body's end; then, when the connection is reusable, Done puts it back.
func (r *Response) Body() io.Reader { return &r.body }

// BodyComplete reports whether the body was read to its end.
func (r *Response) BodyComplete() bool { return r.body.done }

// Chunked reports whether the body is chunked (length unknown in advance).
func (r *Response) Chunked() bool { return r.chunked }

type bodyReader struct {
	c         *Conn
	resp      *Response
	remaining int64
	chunked   io.Reader
	done      bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.done || b.resp.noBody {
		b.done = true
		return 0, io.EOF
	}
	switch {
	case b.chunked != nil:
		n, err := b.chunked.Read(p)
		if err == io.EOF {
			if terr := b.readTrailer(); terr != nil {
				return n, terr
			}
			b.done = true
		} else if err != nil {
			return n, truncated(err)
		}
		return n, err
	case b.remaining >= 0:
		if b.remaining == 0 {
			b.done = true
			return 0, io.EOF
		}
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err := b.c.br.Read(p)
		b.remaining -= int64(n)
		if err != nil {
			if b.remaining == 0 {
				b.done = true
				return n, io.EOF
			}
			return n, truncated(err)
		}
		if b.remaining == 0 {
			b.done = true
			return n, io.EOF
		}
		return n, nil
	default: // until close
		n, err := b.c.br.Read(p)
		if err == io.EOF {
			b.done = true
		}
		return n, err
	}
}

func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (b *bodyReader) readTrailer() error {
	total := 0
	for {
		line, err := readLine(b.c.br, &total)
		if err != nil {
			return truncated(err)
		}
		if len(line) == 0 {
			return nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !httpsyntax.ValidToken(line[:colon]) {
			return &ProtocolError{fmt.Sprintf("malformed trailer line %q", truncate(line))}
		}
		httpsyntax.Canonicalize(line[:colon])
		if hopHeaders[string(line[:colon])] || string(line[:colon]) == "Content-Length" {
			continue
		}
		if b.resp.Trailer == nil {
			b.resp.Trailer = http.Header{}
		}
		k := string(line[:colon])
		b.resp.Trailer[k] = append(b.resp.Trailer[k], string(bytes.TrimSpace(line[colon+1:])))
	}
}

// Buffered returns how many bytes of the response are already buffered, so
// a streaming copy can flush to the client when the backend pauses.
func (c *Conn) Buffered() int { return c.br.Buffered() }

// Reader returns the connection's buffered reader, for an upgraded
// connection's tunnel (it may hold bytes the backend sent after the 101).
func (c *Conn) Reader() *bufio.Reader { return c.br }
