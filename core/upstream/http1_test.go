package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func connOver(data string) *Conn {
	return &Conn{br: bufio.NewReaderSize(strings.NewReader(data), readBufferSize)}
}

func readAll(t *testing.T, c *Conn, method string) (*Response, http.Header, string, error) {
	t.Helper()
	h := http.Header{}
	resp, err := c.ReadResponse(method, h)
	if err != nil {
		return nil, h, "", err
	}
	b, err := io.ReadAll(resp.Body())
	return resp, h, string(b), err
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name, method, raw string
		status            int
		body              string
		close             bool
		header            map[string]string
	}{
		{"content length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhelloEXTRA", 200, "hello", false, map[string]string{"X-A": "1", "Content-Length": "5"}},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n", 200, "abcde", false, map[string]string{"Transfer-Encoding": ""}},
		{"until close", "GET", "HTTP/1.1 200 OK\r\n\r\nall of it", 200, "all of it", true, nil},
		{"http 1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true, nil},
		{"http 1.0 keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, "ok", false, nil},
		{"connection close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 200, "ok", true, nil},
		{"head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 200, "", false, map[string]string{"Content-Length": "100"}},
		{"no content", "GET", "HTTP/1.1 204 No Content\r\n\r\n", 204, "", false, nil},
		{"not modified", "GET", "HTTP/1.1 304 Not Modified\r\nEtag: x\r\n\r\n", 304, "", false, map[string]string{"Etag": "x"}},
		{"interim skipped", "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: a\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, "x", false, map[string]string{"Link": ""}},
		{"hop by hop", "GET", "HTTP/1.1 200 OK\r\nConnection: x-private\r\nX-Private: s\r\nKeep-Alive: timeout=5\r\nUpgrade: h2\r\nContent-Length: 0\r\n\r\n", 200, "", false, map[string]string{"X-Private": "", "Keep-Alive": "", "Upgrade": ""}},
		{"canonical names", "GET", "HTTP/1.1 200 OK\r\ncontent-TYPE: text/plain\r\nx-custom-thing: v\r\ncontent-length: 0\r\n\r\n", 200, "", false, map[string]string{"Content-Type": "text/plain", "X-Custom-Thing": "v"}},
		{"lf only", "GET", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 200, "ok", false, nil},
		{"no reason", "GET", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", 404, "", false, nil},
		{"chunked wins over length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n", 200, "z", false, map[string]string{"Content-Length": ""}},
		{"other coding until close", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw", 200, "raw", true, nil},
		{"switching protocols", "GET", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 101, "", true, map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, h, body, err := readAll(t, connOver(tt.raw), tt.method)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || body != tt.body || resp.Close != tt.close {
				t.Fatalf("status %d body %q close %v", resp.StatusCode, body, resp.Close)
			}
			for k, v := range tt.header {
				if got := h.Get(k); got != v {
					t.Errorf("header %s = %q, want %q (all: %v)", k, got, v, h)
				}
			}
			if !resp.BodyComplete() {
				t.Error("body not complete after EOF")
			}
		})
	}
}

func TestChunkedTrailers(t *testing.T) {
	c := connOver("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 7\r\nx-other: y\r\n\r\nNEXT")
	resp, h, body, err := readAll(t, c, "GET")
	if err != nil || body != "hi" {
		t.Fatalf("%q %v", body, err)
	}
	if h.Get("Trailer") != "" || resp.Trailer.Get("X-Sum") != "7" || resp.Trailer.Get("X-Other") != "y" {
		t.Fatalf("header %v trailer %v", h, resp.Trailer)
	}
	if rest, _ := io.ReadAll(c.br); string(rest) != "NEXT" {
		t.Fatalf("the trailer section was not consumed: %q left", rest)
	}
}

func TestReadResponseErrors(t *testing.T) {
	tests := []struct{ name, raw, want string }{
		{"empty", "", "closed the connection without responding"},
		{"bad status line", "HTTP/2 200 OK\r\n\r\n", "malformed status line"},
		{"bad code", "HTTP/1.1 2x0 OK\r\n\r\n", "malformed status code"},
		{"low code", "HTTP/1.1 099 Low\r\n\r\n", "out of range"},
		{"folding", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\n\r\n", "obsolete line folding"},
		{"space before colon", "HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n", "malformed header name"},
		{"no colon", "HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", "malformed header line"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", "invalid Content-Length"},
		{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "conflicting Content-Length"},
		{"line too long", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", readBufferSize) + "\r\n\r\n", "longer than"},
		{"header too large", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: "+strings.Repeat("b", 1000)+"\r\n", 300) + "\r\n", "larger than"},
		{"truncated header", "HTTP/1.1 200 OK\r\nX-A: 1\r\n", "unexpected EOF"},
		{"nul in value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", "invalid byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := connOver(tt.raw).ReadResponse("GET", http.Header{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestTruncatedBodies(t *testing.T) {
	for _, raw := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n",
	} {
		_, _, _, err := readAll(t, connOver(raw), "GET")
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%q: err = %v, want unexpected EOF", raw, err)
		}
	}
}

func TestWriteRequest(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	c := &Conn{nc: client, bw: bufio.NewWriter(client)}
	u, _ := url.Parse("http://example.com/a%20b?q=1")
	r := &http.Request{Method: "POST", URL: u, RequestURI: "/a%20b?q=1", Host: "example.com", Proto: "HTTP/1.1",
		Header: http.Header{
			"Connection": {"x-secret"}, "X-Secret": {"no"}, "Te": {"trailers, deflate"}, "Keep-Alive": {"1"},
			"Content-Length": {"4"}, "Expect": {"100-continue"}, "X-Many": {"1", "2"},
		},
		Body: io.NopCloser(strings.NewReader("data")), ContentLength: 4}
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(server, 1<<20))
		done <- string(b)
	}()
	if err := c.WriteRequest(&Request{Request: r, ForwardedFor: "10.0.0.1", Proto: "http"}); err != nil {
		t.Fatal(err)
	}
	client.Close()
	got := <-done
	for _, want := range []string{"POST /a%20b?q=1 HTTP/1.1\r\nHost: example.com\r\n", "X-Many: 1\r\nX-Many: 2\r\n", "Te: trailers\r\n",
		"X-Forwarded-For: 10.0.0.1\r\n", "X-Forwarded-Proto: http\r\n", "X-Forwarded-Host: example.com\r\n", "Content-Length: 4\r\n", "\r\n\r\ndata"} {
		if !strings.Contains(got, want) {
			t.Errorf("request lacks %q:\n%s", want, got)
		}
	}
	for _, bad := range []string{"X-Secret", "Keep-Alive", "Expect", "deflate", "Connection"} {
		if strings.Contains(got, bad) {
			t.Errorf("request carries %s:\n%s", bad, got)
		}
	}
}

func TestWriteRequestChunkedBody(t *testing.T) {
	client, server := net.Pipe()
	c := &Conn{nc: client, bw: bufio.NewWriter(client)}
	u, _ := url.Parse("/up")
	r := &http.Request{Method: "PUT", URL: u, RequestURI: "/up", Host: "h", Header: http.Header{},
		Body: io.NopCloser(strings.NewReader("streamed")), ContentLength: -1}
	done := make(chan *http.Request)
	go func() {
		req, err := http.ReadRequest(bufio.NewReader(server))
		if err != nil {
			t.Error(err)
			done <- nil
			return
		}
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		done <- req
	}()
	if err := c.WriteRequest(&Request{Request: r, Proto: "http"}); err != nil {
		t.Fatal(err)
	}
	req := <-done
	if req == nil {
		return
	}
	body, _ := io.ReadAll(req.Body)
	if string(body) != "streamed" || len(req.TransferEncoding) != 1 {
		t.Fatalf("body %q, transfer encoding %v", body, req.TransferEncoding)
	}
}

func TestClientBodyErrorIsDistinguished(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	go io.Copy(io.Discard, server)
	c := &Conn{nc: client, bw: bufio.NewWriter(client)}
	u, _ := url.Parse("/")
	r := &http.Request{Method: "POST", URL: u, RequestURI: "/", Host: "h", Header: http.Header{},
		Body: io.NopCloser(io.MultiReader(strings.NewReader("ab"), errReader{})), ContentLength: 10}
	err := c.WriteRequest(&Request{Request: r})
	var cbe *ClientBodyError
	if !errors.As(err, &cbe) {
		t.Fatalf("err = %v, want a ClientBodyError", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("client reset") }

func TestConnPoolIdleTimeout(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	p := NewConnPool(ln.Addr().String(), PoolConfig{MaxIdle: 2, IdleTimeout: 50 * time.Millisecond, ConnectTimeout: time.Second})
	defer p.Close()
	var cs []*Conn
	for range 3 {
		c, err := p.Get(t.Context(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		p.Put(c, time.Now())
	}
	if st := p.Stats(); st.Idle != 2 || st.Open != 2 || st.Created != 3 {
		t.Fatalf("after putting 3 back with room for 2: %+v", st)
	}
	c, _ := p.Get(t.Context(), time.Now())
	if !c.Reused {
		t.Fatal("an idle connection was not reused")
	}
	p.Put(c, time.Now())
	time.Sleep(80 * time.Millisecond)
	p.CloseIdle(time.Now())
	if st := p.Stats(); st.Idle != 0 || st.Open != 0 {
		t.Fatalf("after the idle timeout: %+v", st)
	}
	c, _ = p.Get(t.Context(), time.Now())
	if c.Reused {
		t.Fatal("got a connection past its idle timeout")
	}
	c.Close()
}

func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.0 301 Moved\r\nLocation: /x\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		c := connOver(raw)
		h := http.Header{}
		resp, err := c.ReadResponse(method, h)
		if err != nil {
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		for k, vs := range h {
			if hopHeaders[k] && !(resp.StatusCode == 101 && (k == "Upgrade" || k == "Connection")) {
				t.Fatalf("hop-by-hop field %s relayed", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("field %s carries a line break or NUL: %q", k, v)
				}
			}
		}
		n, err := io.Copy(io.Discard, resp.Body())
		if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength && resp.StatusCode >= 200 && method != "HEAD" {
			t.Fatalf("read %d bytes of a %d-byte body", n, resp.ContentLength)
		}
	})
}
