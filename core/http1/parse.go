package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"

	"golang.org/x/net/http/httpguts"

	"github.com/wproxy/wproxy/core/httpsyntax"
)

// The fast path of request parsing.
//
// Most requests are ordinary: a request line in origin form, a few header
// fields of printable ASCII, a Content-Length or no body, and the whole
// header already in the read buffer. fastRequest parses exactly those, into
// a Request, URL and Header that the connection reuses, with two allocations
// (one string holding every byte of the header, one []string for the
// values). Anything else — a Transfer-Encoding, repeated Content-Length or
// Host fields, line folding, a URI that needs unescaping, bytes outside
// printable ASCII, a header not yet wholly buffered — is left, unconsumed, to
// http.ReadRequest. The result of the fast path equals http.ReadRequest's for
// every request it accepts; FuzzFastRequest checks it.

// maxFastFields bounds the header fields the fast path takes.
const maxFastFields = 64

type fastField struct {
	key            string // interned canonical name, or "" when keyOff/keyEnd locate it
	keyOff, keyEnd int
	valOff, valEnd int
	canonKey       bool // the name at keyOff is canonical already
}

// reqState is the per-connection storage the fast path reuses.
type reqState struct {
	req    http.Request
	url    url.URL
	header http.Header
	fields []fastField
	body   fixedBody
	// headLen is the length of the last request's line and header,
	// through the blank line.
	headLen int
}

// fastRequest parses the buffered request, or reports false having consumed
// nothing.
func (c *conn) fastRequest() (*http.Request, bool) {
	buf, _ := c.br.Peek(c.br.Buffered())
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 {
		return nil, false
	}
	head := buf[:end+2] // through the last field line's CRLF
	st := &c.rs
	st.headLen = end + 4

	// Request line: METHOD SP origin-form SP HTTP/1.x CRLF
	lineEnd := bytes.Index(head, crlf)
	line := head[:lineEnd]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return nil, false
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return nil, false
	}
	sp2 += sp1 + 1
	method, uri, proto := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !httpsyntax.ValidToken(method) || bytes.Equal(method, []byte("CONNECT")) || bytes.Equal(method, []byte("PRI")) {
		return nil, false
	}
	minor := 0
	switch string(proto) {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return nil, false
	}
	qmark, ok := plainURI(uri)
	if !ok {
		return nil, false
	}

	// Field lines.
	fields := st.fields[:0]
	hosts, lengths := 0, 0
	lengthField := -1
	for off := lineEnd + 2; off < len(head); {
		next := bytes.Index(head[off:], crlf)
		fl := head[off : off+next]
		lineOff := off
		off += next + 2
		colon := bytes.IndexByte(fl, ':')
		if colon <= 0 || !httpsyntax.ValidToken(fl[:colon]) || len(fields) == maxFastFields {
			return nil, false
		}
		v := fl[colon+1:]
		for _, b := range v {
			if b < 0x20 && b != '\t' || b >= 0x7f {
				return nil, false
			}
		}
		vs, ve := 0, len(v)
		for vs < ve && (v[vs] == ' ' || v[vs] == '\t') {
			vs++
		}
		for ve > vs && (v[ve-1] == ' ' || v[ve-1] == '\t') {
			ve--
		}
		f := fastField{keyOff: lineOff, keyEnd: lineOff + colon, valOff: lineOff + colon + 1 + vs, valEnd: lineOff + colon + 1 + ve}
		name := fl[:colon]
		f.key = commonRequestKeys[string(name)]
		switch f.key {
		case "Host":
			hosts++
		case "Content-Length":
			lengths++
			lengthField = len(fields)
		case "Transfer-Encoding":
			return nil, false
		case "":
			if httpsyntax.IsCanonical(name) {
				f.canonKey = true
			} else if equalFoldAny(name, "host", "content-length", "transfer-encoding") {
				return nil, false
			}
		}
		fields = append(fields, f)
	}
	if hosts > 1 || lengths > 1 {
		return nil, false
	}
	var length int64
	if lengthField >= 0 {
		f := fields[lengthField]
		var ok bool
		if length, ok = httpsyntax.ParseLength(head[f.valOff:f.valEnd]); !ok {
			return nil, false
		}
	}

	// Accepted: build the request from one string of the whole head.
	str := string(head)
	hdr := st.header
	if hdr == nil {
		hdr = make(http.Header, len(fields))
		st.header = hdr
	} else {
		clear(hdr)
	}
	vals := make([]string, len(fields))
	host := ""
	for i, f := range fields {
		key := f.key
		if key == "" {
			if f.canonKey {
				key = str[f.keyOff:f.keyEnd]
			} else {
				key = http.CanonicalHeaderKey(str[f.keyOff:f.keyEnd])
			}
		}
		vals[i] = str[f.valOff:f.valEnd]
		if key == "Host" {
			host = vals[i]
			continue // http.ReadRequest removes Host from the header
		}
		if prev, ok := hdr[key]; ok {
			hdr[key] = append(prev, vals[i])
		} else {
			hdr[key] = vals[i : i+1 : i+1]
		}
	}
	st.fields = fields[:0]
	if p := hdr["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := hdr["Cache-Control"]; !ok {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}

	uriStr := str[sp1+1 : sp2]
	st.url = url.URL{}
	if qmark >= 0 {
		st.url.Path = uriStr[:qmark]
		st.url.RawQuery = uriStr[qmark+1:]
		st.url.ForceQuery = st.url.RawQuery == ""
	} else {
		st.url.Path = uriStr
	}
	req := &st.req
	*req = http.Request{
		Method:        internMethod(str[:sp1]),
		URL:           &st.url,
		Proto:         str[sp2+1 : lineEnd],
		ProtoMajor:    1,
		ProtoMinor:    minor,
		Header:        hdr,
		Host:          host,
		RequestURI:    uriStr,
		ContentLength: length,
		Close:         shouldClose(minor, hdr["Connection"]),
	}
	if length > 0 {
		st.body = fixedBody{br: c.br, n: length}
		req.Body = &st.body
	} else {
		req.Body = http.NoBody
	}
	c.br.Discard(len(head) + 2)
	return req, true
}

var crlf = []byte("\r\n")

// plainURI reports whether uri is an origin-form target that url.ParseRequestURI
// takes apart without unescaping or rewriting anything: a path of bytes
// that need no escaping, then an optional query of printable ASCII. It
// returns the index of the '?' or -1.
func plainURI(uri []byte) (int, bool) {
	if len(uri) == 0 || uri[0] != '/' {
		return -1, false
	}
	q := -1
	for i, b := range uri {
		if q < 0 {
			if b == '?' {
				q = i
				continue
			}
			if b >= 0x80 || !pathChars[b] {
				return -1, false
			}
			continue
		}
		if b <= 0x20 || b >= 0x7f || b == '#' {
			return -1, false
		}
	}
	return q, true
}

// pathChars are the bytes a URL path keeps as they are: url.URL.EscapedPath
// of such a path is the path itself, so url.ParseRequestURI sets no RawPath.
var pathChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

func equalFoldAny(b []byte, names ...string) bool {
	for _, n := range names {
		if len(b) == len(n) && bytes.EqualFold(b, []byte(n)) {
			return true
		}
	}
	return false
}

// shouldClose is net/http's rule: HTTP/1.0 closes unless it asks for
// keep-alive, HTTP/1.1 closes when it asks to.
func shouldClose(minor int, conn []string) bool {
	hasClose := httpguts.HeaderValuesContainsToken(conn, "close")
	if minor == 0 {
		return hasClose || !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	}
	return hasClose
}

var methods = map[string]string{
	"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "DELETE": "DELETE",
	"OPTIONS": "OPTIONS", "PATCH": "PATCH", "TRACE": "TRACE",
}

// internMethod returns the constant for a common method, keeping the
// request's string otherwise.
func internMethod(m string) string {
	if c, ok := methods[m]; ok {
		return c
	}
	return m
}

// commonRequestKeys interns frequent request header names: a name sent in
// any case maps to its canonical constant.
var commonRequestKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control", "Connection",
		"Content-Length", "Content-Type", "Cookie", "Host", "If-Modified-Since", "If-None-Match", "Origin",
		"Pragma", "Referer", "Transfer-Encoding", "Upgrade", "Upgrade-Insecure-Requests", "User-Agent",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Dnt", "Te", "Expect",
	} {
		m[k] = k
		lower := []byte(k)
		for i, c := range lower {
			if 'A' <= c && c <= 'Z' {
				lower[i] = c + 'a' - 'A'
			}
		}
		m[string(lower)] = k
	}
	return m
}()

// fixedBody is the body of a request with a Content-Length, read from the
// connection's buffer.
type fixedBody struct {
	br     *bufio.Reader
	n      int64
	closed bool
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	if err == io.EOF {
		if b.n > 0 {
			err = io.ErrUnexpectedEOF
		}
	} else if err == nil && b.n == 0 {
		err = io.EOF
	}
	return n, err
}

// Close marks the body closed for the handler; the server still drains what
// is left so that the connection can carry the next request.
func (b *fixedBody) Close() error {
	b.closed = true
	return nil
}

// discard reads and drops what is left of the body, up to limit bytes; it
// reports whether the body ended.
func (b *fixedBody) discard(limit int64) bool {
	if b.n > limit {
		return false
	}
	n, err := b.br.Discard(int(b.n))
	b.n -= int64(n)
	return err == nil && b.n == 0
}
