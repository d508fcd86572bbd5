package http1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String()
}

func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Remote", r.RemoteAddr)
		fmt.Fprintf(w, "%s %s host=%s body=%q", r.Method, r.RequestURI, r.Host, body)
	})
}

// exchange writes raw bytes on a new connection and returns what the server
// sent until it closed the connection or went quiet for a moment.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestKeepAliveWithNetHTTPClient(t *testing.T) {
	addr := serve(t, &Server{Handler: echoHandler()})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var remote string
	for i := 0; i < 5; i++ {
		resp, err := client.Post("http://"+addr+"/p?i="+fmt.Sprint(i), "text/plain", strings.NewReader("hi"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf(`POST /p?i=%d host=%s body="hi"`, i, addr); string(b) != want {
			t.Fatalf("got %q, want %q", b, want)
		}
		if remote != "" && resp.Header.Get("X-Remote") != remote {
			t.Fatalf("request %d came on a new connection", i)
		}
		remote = resp.Header.Get("X-Remote")
	}
}

func TestPipelinedRequests(t *testing.T) {
	addr := serve(t, &Server{Handler: echoHandler()})
	got := exchange(t, addr, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	i1, i2 := strings.Index(got, `GET /1 host=a`), strings.Index(got, `GET /2 host=a`)
	if i1 < 0 || i2 < i1 || strings.Count(got, "HTTP/1.1 200 OK") != 2 {
		t.Fatalf("pipelined answers:\n%s", got)
	}
}

func TestHTTP10(t *testing.T) {
	addr := serve(t, &Server{Handler: echoHandler()})
	got := exchange(t, addr, "GET /old HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") || !strings.Contains(got, "Connection: close\r\n") || !strings.HasSuffix(got, `GET /old host= body=""`) {
		t.Fatalf("HTTP/1.0 answer:\n%s", got)
	}
	// keep-alive asked for: the length is known, the connection stays.
	got = exchange(t, addr, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
	if strings.Count(got, "HTTP/1.0 200 OK") != 1 || !strings.Contains(got, "Connection: close") {
		// the first response has no Content-Length from the handler, so
		// HTTP/1.0 ends its body with the connection
		t.Fatalf("HTTP/1.0 keep-alive answer:\n%s", got)
	}
}

func TestHTTP10KeepAliveWithLength(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		w.Write([]byte("ok"))
	})})
	got := exchange(t, addr, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
	if strings.Count(got, "HTTP/1.0 200 OK") != 2 || !strings.Contains(got, "Connection: keep-alive\r\n") {
		t.Fatalf("answers:\n%s", got)
	}
}

func TestChunkedRequestAndResponse(t *testing.T) {
	addr := serve(t, &Server{Handler: echoHandler()})
	got := exchange(t, addr, "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
	if !strings.Contains(got, "Transfer-Encoding: chunked\r\n") || !strings.Contains(got, `POST /c host=a body="abcde"`) || !strings.HasSuffix(got, "\r\n0\r\n\r\n") {
		t.Fatalf("answer:\n%s", got)
	}
}

func TestExpectContinue(t *testing.T) {
	addr := serve(t, &Server{Handler: echoHandler()})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PUT /e HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	if line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q", line)
	}
	br.ReadString('\n')
	io.WriteString(c, "data")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != `PUT /e host=a body="data"` {
		t.Fatalf("body %q", b)
	}
}

func TestBadRequests(t *testing.T) {
	addr := serve(t, &Server{Handler: echoHandler(), MaxHeaderBytes: 1024})
	tests := []struct{ name, raw, want string }{
		{"garbage", "HELLO\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", "400 Bad Request: missing required Host header"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400 Bad Request: malformed Host header"},
		{"header too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 8000) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		{"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501 Not Implemented"},
		{"bad expect", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx", "HTTP/1.1 417 Expectation Failed"},
		{"bad chunk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := exchange(t, addr, tt.raw)
			if !strings.Contains(got, tt.want) {
				t.Fatalf("answer:\n%s\nwant %q", got, tt.want)
			}
		})
	}
}

func TestHeadHasNoBody(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		w.Write([]byte("hello"))
	})})
	got := exchange(t, addr, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if strings.Count(got, "Content-Length: 5") != 2 || strings.Count(got, "hello") != 1 {
		t.Fatalf("answer:\n%s", got)
	}
}

func TestTrailers(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.Write([]byte("abc"))
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	})})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "yes" {
		t.Fatalf("trailers %v", resp.Trailer)
	}
}

func TestPanicClosesOnlyThatConnection(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("handler bug")
		}
		w.Write([]byte("fine"))
	})})
	got := exchange(t, addr, "GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
	if got != "" {
		t.Fatalf("after a panic the server sent %q", got)
	}
	resp, err := http.Get("http://" + addr + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "fine" {
		t.Fatalf("%q", b)
	}
}

func TestTimeouts(t *testing.T) {
	addr := serve(t, &Server{Handler: echoHandler(), ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	// A client that stalls in the middle of its header is cut off.
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n")
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a stalled request", n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stalled header held the connection for %s", d)
	}
	// An idle keep-alive connection is closed after the idle timeout.
	c2, _ := net.Dial("tcp", addr)
	defer c2.Close()
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c2)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
}

func TestShutdownWaitsForActiveAndClosesIdle(t *testing.T) {
	release := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		w.Write([]byte("done"))
	})}
	addr := serve(t, s)
	idle, _ := net.Dial("tcp", addr)
	defer idle.Close()
	io.WriteString(idle, "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	} else {
		io.ReadAll(resp.Body)
	}
	active, _ := net.Dial("tcp", addr)
	defer active.Close()
	io.WriteString(active, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection at shutdown: %v, want EOF", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("shutdown returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(active), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done" || !resp.Close {
		t.Fatalf("in-flight response %q close=%v", b, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
	})}
	addr := serve(t, s)
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestHijack(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	})})
	got := exchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\nping\n")
	if got != "HTTP/1.1 101 Switching Protocols\r\n\r\necho ping\n" {
		t.Fatalf("%q", got)
	}
}

func TestDateHeader(t *testing.T) {
	addr := serve(t, &Server{Handler: echoHandler()})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	d, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil || time.Since(d) > 5*time.Second {
		t.Fatalf("Date %q: %v", resp.Header.Get("Date"), err)
	}
}
