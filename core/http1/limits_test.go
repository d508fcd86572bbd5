package http1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// waitFor waits until cond holds, failing the test after a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// send writes parts on a new connection, pausing between them, and returns
// what the server sent and the error that ended the reading: io.EOF (or a
// reset) when the server closed the connection, a timeout when it kept it
// open for five seconds.
func send(t *testing.T, addr string, pause time.Duration, parts ...string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		for i, p := range parts {
			if i > 0 {
				time.Sleep(pause)
			}
			// The server may close before reading everything.
			if _, err := io.WriteString(c, p); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	_, err = io.Copy(&b, c)
	if err == nil {
		err = io.EOF
	}
	return b.String(), err
}

// closedByServer reports whether err ended a read because the server closed
// the connection: with a FIN, or with a reset when the client had sent
// more than the server read.
func closedByServer(err error) bool {
	return errors.Is(err, io.EOF) || isReset(err)
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// pieces cuts s into pieces of n bytes.
func pieces(s string, n int) []string {
	var ps []string
	for len(s) > n {
		ps = append(ps, s[:n])
		s = s[n:]
	}
	return append(ps, s)
}

// requestLine returns a request line of n bytes, without its CRLF.
func requestLine(n int) string {
	const frame = "GET / HTTP/1.1"
	return "GET /" + strings.Repeat("a", n-len(frame)) + " HTTP/1.1"
}

func TestRequestLineLimit(t *testing.T) {
	small := serve(t, &Server{Handler: echoHandler(), MaxRequestLineBytes: 100})
	dflt := serve(t, &Server{Handler: echoHandler()})
	const host = "Host: a\r\nConnection: close\r\n\r\n"
	tests := []struct {
		name  string
		addr  string
		parts []string
		want  string
	}{
		// The header is buffered whole: the fast path.
		{"at limit", small, []string{requestLine(100) + "\r\n" + host}, "HTTP/1.1 200 OK"},
		{"over limit", small, []string{requestLine(101) + "\r\n" + host}, "HTTP/1.1 414 URI Too Long"},
		// Buffered whole, but left to net/http's parser.
		{"chunked at limit", small, []string{requestLine(100) + "\r\nTransfer-Encoding: chunked\r\n" + host + "0\r\n\r\n"}, "HTTP/1.1 200 OK"},
		{"chunked over limit", small, []string{requestLine(101) + "\r\nTransfer-Encoding: chunked\r\n" + host + "0\r\n\r\n"}, "HTTP/1.1 414 URI Too Long"},
		{"bare LF at limit", small, []string{requestLine(100) + "\nHost: a\nConnection: close\n\n"}, "HTTP/1.1 200 OK"},
		{"bare LF over limit", small, []string{requestLine(101) + "\nHost: a\nConnection: close\n\n"}, "HTTP/1.1 414 URI Too Long"},
		{"CR at limit+1 then more", small, []string{requestLine(100) + "\rx\r\n" + host}, "HTTP/1.1 414 URI Too Long"},
		// Arriving in pieces, the line is followed as it comes.
		{"pieces at limit", small, []string{requestLine(100)[:60], requestLine(100)[60:] + "\r", "\n" + host}, "HTTP/1.1 200 OK"},
		{"pieces over limit", small, []string{requestLine(101)[:60], requestLine(101)[60:], "\r\n" + host}, "HTTP/1.1 414 URI Too Long"},
		{"pieces never ending", small, []string{requestLine(90), strings.Repeat("a", 20)}, "HTTP/1.1 414 URI Too Long"},
		// Longer than the read buffer.
		{"default at limit", dflt, []string{requestLine(DefaultMaxRequestLineBytes) + "\r\n" + host}, "HTTP/1.1 200 OK"},
		{"default over limit", dflt, []string{requestLine(DefaultMaxRequestLineBytes+1) + "\r\n" + host}, "HTTP/1.1 414 URI Too Long"},
		{"default over limit in pieces", dflt, pieces(requestLine(DefaultMaxRequestLineBytes+1)+"\r\n"+host, 1000), "HTTP/1.1 414 URI Too Long"},
		{"default far over limit", dflt, []string{requestLine(1<<20) + "\r\n" + host}, "HTTP/1.1 414 URI Too Long"},
		{"garbage over limit", dflt, []string{strings.Repeat("x", 3*DefaultMaxRequestLineBytes)}, "HTTP/1.1 414 URI Too Long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := send(t, tt.addr, 10*time.Millisecond, tt.parts...)
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("answer:\n%.300s\nwant %q", got, tt.want)
			}
			if !closedByServer(err) {
				t.Fatalf("connection not closed: %v", err)
			}
		})
	}
}

// FuzzLineLimit checks that lineLimit, given a request's bytes in up to
// three pieces, finds a line too long exactly when the bytes before the
// first LF, less a CR just before it, number more than the limit.
func FuzzLineLimit(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint16(14), uint16(3), uint16(15))
	f.Add([]byte("GET / HTTP/1.1\r\n"), uint16(13), uint16(14), uint16(15))
	f.Add([]byte("GET / HTTP/1.1\n"), uint16(14), uint16(0), uint16(14))
	f.Add([]byte("GET / HTTP/1.1\r"), uint16(14), uint16(15), uint16(15))
	f.Add([]byte("\r\n"), uint16(0), uint16(1), uint16(1))
	f.Fuzz(func(t *testing.T, raw []byte, limit, cut1, cut2 uint16) {
		a := min(int(cut1), len(raw))
		b := min(max(int(cut2), a), len(raw))
		var l lineLimit
		l.start(int(limit), raw[:a])
		l.scan(raw[a:b])
		l.scan(raw[b:])

		var tooLong, ended bool
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			n := i
			if i > 0 && raw[i-1] == '\r' {
				n--
			}
			tooLong, ended = n > int(limit), true
		} else {
			// Unended: too long already unless a CR at limit+1 may
			// still end it.
			n := len(raw)
			tooLong = n > int(limit)+1 || n == int(limit)+1 && raw[n-1] != '\r'
		}
		if l.hit != tooLong {
			t.Fatalf("%q with limit %d, cut at %d and %d: hit %v, want %v", raw, limit, a, b, l.hit, tooLong)
		}
		if want := !ended && !tooLong; l.on != want {
			t.Fatalf("%q with limit %d, cut at %d and %d: still following %v, want %v", raw, limit, a, b, l.on, want)
		}
	})
}

func TestHeaderLimit(t *testing.T) {
	small := serve(t, &Server{Handler: echoHandler(), MaxHeaderBytes: 1024})
	dflt := serve(t, &Server{Handler: echoHandler()})
	head := func(n int) string {
		return "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: " + strings.Repeat("x", n) + "\r\n\r\n"
	}
	tests := []struct {
		name  string
		addr  string
		parts []string
		want  string
	}{
		{"under limit", small, []string{head(900)}, "HTTP/1.1 200 OK"},
		{"exactly at the limit", small, []string{head(1024 - 55)}, "HTTP/1.1 200 OK"},
		{"one byte over", small, []string{head(1024 - 54)}, "HTTP/1.1 431 Request Header Fields Too Large"},
		{"exactly at the limit in pieces", small, pieces(head(1024-55), 300), "HTTP/1.1 200 OK"},
		{"one byte over in pieces", small, pieces(head(1024-54), 300), "HTTP/1.1 431 Request Header Fields Too Large"},
		{"over limit", small, []string{head(8000)}, "HTTP/1.1 431 Request Header Fields Too Large"},
		{"over limit in pieces", small, pieces(head(8000), 500), "HTTP/1.1 431 Request Header Fields Too Large"},
		{"default: large cookie-sized header", dflt, []string{head(60 << 10)}, "HTTP/1.1 200 OK"},
		{"default: over limit", dflt, []string{head(DefaultMaxHeaderBytes + 8<<10)}, "HTTP/1.1 431 Request Header Fields Too Large"},
		{"default: many fields over limit", dflt, []string{"GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Field: "+strings.Repeat("v", 100)+"\r\n", 1000) + "\r\n"}, "HTTP/1.1 431 Request Header Fields Too Large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := send(t, tt.addr, 10*time.Millisecond, tt.parts...)
			if !strings.HasPrefix(got, tt.want) {
				t.Fatalf("answer:\n%.300s\nwant %q", got, tt.want)
			}
			if !closedByServer(err) {
				t.Fatalf("connection not closed: %v", err)
			}
		})
	}
}

// countingListener counts the calls to Accept.
type countingListener struct {
	net.Listener
	accepts atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	l.accepts.Add(1)
	return l.Listener.Accept()
}

// serveCounting is serve with a listener that counts its Accept calls; the
// channel receives what Serve returns.
func serveCounting(t *testing.T, s *Server) (string, *countingListener, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cl := &countingListener{Listener: ln}
	served := make(chan error, 1)
	go func() { served <- s.Serve(cl) }()
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String(), cl, served
}

// dialIdle opens n connections that send nothing.
func dialIdle(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	cs := make([]net.Conn, n)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs[i] = c
	}
	return cs
}

// startRequest sends a GET on a new connection and returns a channel that
// receives the answer's body, or the error that prevented it.
func startRequest(t *testing.T, addr, path string) <-chan string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	return got
}

// notAnswered checks that nothing arrives on got for a while.
func notAnswered(t *testing.T, got <-chan string, what string) {
	t.Helper()
	select {
	case s := <-got:
		t.Fatalf("%s: answered %q", what, s)
	case <-time.After(300 * time.Millisecond):
	}
}

// answered waits for the answer on got and checks it.
func answered(t *testing.T, got <-chan string, want string) {
	t.Helper()
	select {
	case s := <-got:
		if !strings.HasPrefix(s, want) {
			t.Fatalf("answer %q, want %q", s, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no answer")
	}
}

func TestMaxConns(t *testing.T) {
	s := &Server{Handler: echoHandler(), MaxConns: 3}
	addr, ln, served := serveCounting(t, s)
	idle := dialIdle(t, addr, 3)
	waitFor(t, "3 connections", func() bool { return s.Conns() == 3 })

	// The fourth connection is made (the kernel's backlog takes it) but
	// not accepted, so its request waits.
	fourth := startRequest(t, addr, "/4")
	notAnswered(t, fourth, "fourth connection at MaxConns 3")
	if n := ln.accepts.Load(); n != 3 {
		t.Fatalf("Serve called Accept %d times at the limit, want 3", n)
	}
	if n := s.Conns(); n != 3 {
		t.Fatalf("Conns() = %d, want 3", n)
	}

	idle[0].Close()
	answered(t, fourth, "GET /4 host=a")
	waitFor(t, "3 connections", func() bool { return s.Conns() == 3 })

	// Serve, waiting at the limit again, returns when the server closes.
	s.Close()
	select {
	case err := <-served:
		if err != ErrServerClosed {
			t.Fatalf("Serve returned %v, want ErrServerClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve waiting at MaxConns did not return after Close")
	}
}

func TestSetLimitsRaisingMaxConnsWakesServe(t *testing.T) {
	s := &Server{Handler: echoHandler(), MaxConns: 1}
	addr, _, _ := serveCounting(t, s)
	dialIdle(t, addr, 1)
	waitFor(t, "a connection", func() bool { return s.Conns() == 1 })
	second := startRequest(t, addr, "/2")
	notAnswered(t, second, "second connection at MaxConns 1")
	s.SetLimits(Limits{MaxConns: 2})
	answered(t, second, "GET /2 host=a")
	if n := s.Conns(); n != 2 {
		t.Fatalf("Conns() = %d, want 2", n)
	}
	// Lowering the limit closes nothing, and stops accepting.
	s.SetLimits(Limits{MaxConns: 1})
	third := startRequest(t, addr, "/3")
	notAnswered(t, third, "third connection at MaxConns 1")
	s.SetLimits(Limits{})
	answered(t, third, "GET /3 host=a")
}

// keepAlive is a client connection for several requests.
type keepAlive struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{t: t, c: c, br: bufio.NewReader(c)}
}

// do sends raw and returns the answer's status line.
func (k *keepAlive) do(raw string) string {
	k.t.Helper()
	if _, err := io.WriteString(k.c, raw); err != nil {
		k.t.Fatal(err)
	}
	k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		k.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Status
}

// closed waits for the server to close the connection and returns how long
// that took.
func (k *keepAlive) closed() time.Duration {
	k.t.Helper()
	start := time.Now()
	k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := k.br.ReadByte(); !closedByServer(err) {
		k.t.Fatalf("connection not closed: %v", err)
	}
	return time.Since(start)
}

func TestSetLimitsNextRequest(t *testing.T) {
	s := &Server{Handler: echoHandler()}
	addr := serve(t, s)
	line := "GET /" + strings.Repeat("a", 200) + " HTTP/1.1\r\nHost: a\r\n\r\n"
	big := "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 8000) + "\r\n\r\n"
	k := dialKeepAlive(t, addr)
	if st := k.do(line); st != "200 OK" {
		t.Fatalf("long line under the first limits: %s", st)
	}
	if st := k.do(big); st != "200 OK" {
		t.Fatalf("large header under the first limits: %s", st)
	}
	s.SetLimits(Limits{MaxRequestLineBytes: 100})
	if st := k.do(line); st != "414 URI Too Long" {
		t.Fatalf("long line after SetLimits: %s", st)
	}
	k.closed()

	k = dialKeepAlive(t, addr)
	if st := k.do(big); st != "200 OK" {
		t.Fatalf("large header: %s", st)
	}
	s.SetLimits(Limits{MaxHeaderBytes: 1024})
	if st := k.do(big); st != "431 Request Header Fields Too Large" {
		t.Fatalf("large header after SetLimits: %s", st)
	}
	k.closed()
}

func TestSetLimitsTimeouts(t *testing.T) {
	s := &Server{Handler: echoHandler(), IdleTimeout: time.Hour}
	addr := serve(t, s)
	const req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"

	// A lower idle timeout applies from the next wait, though the
	// connection's deadline was set an hour ahead.
	k := dialKeepAlive(t, addr)
	k.do(req)
	s.SetLimits(Limits{IdleTimeout: 200 * time.Millisecond})
	k.do(req)
	if d := k.closed(); d < 150*time.Millisecond {
		t.Fatalf("closed after %s, before the idle timeout", d)
	}

	// A header timeout set while serving cuts off a stalled header.
	s.SetLimits(Limits{ReadHeaderTimeout: 200 * time.Millisecond})
	got, err := send(t, addr, 0, "GET / HTTP/1.1\r\nHost: a\r\n")
	if got != "" || !closedByServer(err) {
		t.Fatalf("stalled header: answer %q, %v", got, err)
	}

	// No idle timeout any more: the deadline of the old one goes too.
	s.SetLimits(Limits{IdleTimeout: 200 * time.Millisecond})
	k = dialKeepAlive(t, addr)
	k.do(req)
	s.SetLimits(Limits{})
	k.do(req)
	k.c.SetReadDeadline(time.Now().Add(600 * time.Millisecond))
	if _, err := k.br.ReadByte(); !isTimeoutErr(err) {
		t.Fatalf("idle connection without idle timeout: %v, want it open", err)
	}
}

// TestSetLimitsHammer changes the limits while clients make requests, for
// the race detector.
func TestSetLimitsHammer(t *testing.T) {
	s := &Server{Handler: echoHandler()}
	addr := serve(t, s)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.SetLimits(Limits{
				ReadHeaderTimeout:   time.Duration(1+i%3) * time.Second,
				IdleTimeout:         time.Duration(1+i%5) * time.Second,
				MaxHeaderBytes:      4096 + i%1000,
				MaxRequestLineBytes: 1000 + i%100,
				MaxConns:            10 + i%10,
			})
			s.Conns()
			runtime.Gosched()
		}
	}()
	var clients sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			for i := range 100 {
				resp, err := client.Get(fmt.Sprintf("http://%s/%d", addr, i))
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %s", resp.Status)
					return
				}
			}
		}()
	}
	clients.Wait()
	close(stop)
	<-stopped
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestErrorAnswerLingers checks that the server follows its answer to a
// request it refused half-way with a FIN and reads on, rather than
// resetting the connection, which can lose the answer.
func TestErrorAnswerLingers(t *testing.T) {
	addr := serve(t, &Server{Handler: echoHandler(), MaxHeaderBytes: 1024, MaxRequestLineBytes: 100})
	for _, tt := range []struct{ name, raw, want string }{
		{"line too long", requestLine(3000), "HTTP/1.1 414 URI Too Long\r\n"},
		{"header too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 20000), "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tt.raw)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c)
			if !strings.HasPrefix(string(got), tt.want) || err != nil {
				t.Fatalf("answer %q, %v; want %q and EOF", got, err, tt.want)
			}
			// A server that had closed would answer this with a reset,
			// failing the next write.
			for i := range 3 {
				if _, err := io.WriteString(c, "more of the request"); err != nil {
					t.Fatalf("write %d after the answer: %v", i, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestSlowHeaderIsCutOff is the slowloris attack: a client that sends its
// header a byte at a time, never pausing long, is disconnected once the
// header timeout has passed since its first byte.
func TestSlowHeaderIsCutOff(t *testing.T) {
	const timeout = 500 * time.Millisecond
	addr := serve(t, &Server{Handler: echoHandler(), ReadHeaderTimeout: timeout, IdleTimeout: 10 * time.Second})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	head := "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: slowloris\r\n\r\n" // 5 s at 10 bytes a second
	var sent atomic.Int32
	start := time.Now()
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := range len(head) {
			if _, err := c.Write([]byte{head[i]}); err != nil {
				return
			}
			sent.Add(1)
			<-tick.C
		}
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	took := time.Since(start)
	if err == nil {
		err = io.EOF
	}
	if len(got) > 0 || !closedByServer(err) {
		t.Fatalf("got %q, %v; want the connection closed without an answer", got, err)
	}
	if took < timeout-50*time.Millisecond || took > timeout+time.Second {
		t.Fatalf("closed after %s, want about %s", took, timeout)
	}
	if n := sent.Load(); n < 4 {
		t.Fatalf("only %d bytes sent before the close; the client was meant to keep sending", n)
	}
}

// TestIdleClientIsClosed: a client that connects and sends nothing is closed
// after the idle timeout.
func TestIdleClientIsClosed(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := &Server{Handler: echoHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: timeout}
	addr := serve(t, s)
	start := time.Now()
	got, err := send(t, addr, 0)
	took := time.Since(start)
	if got != "" || !closedByServer(err) {
		t.Fatalf("got %q, %v; want the connection closed without an answer", got, err)
	}
	if took < timeout-50*time.Millisecond || took > timeout+time.Second {
		t.Fatalf("closed after %s, want about %s", took, timeout)
	}
	waitFor(t, "no connections", func() bool { return s.Conns() == 0 })
}

// TestManySlowClients: 200 clients that send nothing or dribble their header
// are all closed within the timeouts, a normal client is served meanwhile,
// and afterwards the server holds nothing for them.
func TestManySlowClients(t *testing.T) {
	const (
		timeout = time.Second
		clients = 200
	)
	s := &Server{Handler: echoHandler(), ReadHeaderTimeout: timeout, IdleTimeout: timeout}
	addr := serve(t, s)
	// Let goroutines of earlier tests end before taking the baseline.
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	var wg sync.WaitGroup
	took := make(chan time.Duration, clients)
	stop := make(chan struct{})
	for i := range clients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if i%2 == 1 {
			// A slowloris: a byte every 100 ms.
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					if _, err := c.Write([]byte("X")); err != nil {
						return
					}
					select {
					case <-tick.C:
					case <-stop:
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := io.Copy(io.Discard, c)
			if err != nil && !isReset(err) {
				t.Errorf("slow client: %v, want the server to close", err)
			}
			took <- time.Since(start)
		}()
	}
	waitFor(t, "the slow clients' connections", func() bool { return s.Conns() >= clients })

	// A normal client is served while the server holds them.
	tr := &http.Transport{}
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/normal")
	if err != nil {
		t.Fatalf("normal client among slow ones: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	if !strings.HasPrefix(string(b), "GET /normal") {
		t.Fatalf("normal client: %q", b)
	}
	if n := s.Conns(); n < clients-10 {
		t.Fatalf("only %d slow connections open while the normal client was served; the test was meant to overlap them", n)
	}

	// Every slow client closes by the server (after the idle timeout
	// or the header timeout since its first byte).
	for range clients {
		if d := <-took; d > timeout+1500*time.Millisecond {
			t.Errorf("a slow client was held for %s, want about %s", d, timeout)
		}
	}
	close(stop)
	wg.Wait()
	waitFor(t, "no connections", func() bool { return s.Conns() == 0 })
	waitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= baseline })
}

// TestSlowHeaderDeadlineNotTheBodys is a regression test: the header
// deadline of a header that arrived in pieces stayed on the connection and
// cut off the body read after it.
func TestSlowHeaderDeadlineNotTheBodys(t *testing.T) {
	addr := serve(t, &Server{Handler: echoHandler(), ReadHeaderTimeout: 200 * time.Millisecond})
	got, err := send(t, addr, 100*time.Millisecond,
		"POST /p HTTP/1.1\r\nHost: a\r\n",
		"Content-Length: 4\r\nConnection: close\r\n\r\n",
		"", "", "", // the body comes after the header timeout
		"body")
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK") || !strings.Contains(got, `POST /p host=a body="body"`) || !closedByServer(err) {
		t.Fatalf("answer %q, %v", got, err)
	}
}
