package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rawRequest sends raw bytes on a new connection and returns the status
// line of the answer, or the error that ended the read.
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, req)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

// The limits section reaches every listener: oversized request lines and
// headers are refused with 414 and 431, a listener at max_connections
// accepts no more until one closes, a slow header is cut off, and a reload
// changes the limits of the listeners it keeps.
func TestListenerLimits(t *testing.T) {
	a := startBackend(t, "a", nil)
	dir := t.TempDir()
	conf := func(maxConns int) string {
		return fmt.Sprintf(`
listeners: [{name: web, address: "127.0.0.1:0", routes: [{pool: p}]}]
pools: {p: {backends: [{address: %s}]}}
limits: {max_connections: %d, max_header_bytes: 2048, max_request_line_bytes: 512}
timeouts: {client_header: 300ms, client_idle: 10s}
admin: {address: "127.0.0.1:0"}
`, a.addr, maxConns)
	}
	_, srv := startProxyIn(t, dir, conf(2))
	addr := srv.Addrs()[0]

	if got := rawRequest(t, addr, "GET /"+strings.Repeat("a", 490)+" HTTP/1.1\r\nHost: x\r\n\r\n"); got != "HTTP/1.1 200 OK" {
		t.Errorf("a 504-byte request line: %q", got)
	}
	if got := rawRequest(t, addr, "GET /"+strings.Repeat("a", 600)+" HTTP/1.1\r\nHost: x\r\n\r\n"); got != "HTTP/1.1 414 URI Too Long" {
		t.Errorf("a 606-byte request line: %q", got)
	}
	if got := rawRequest(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 3000)+"\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Errorf("a 3 KB header: %q", got)
	}

	// A slow header: one byte every 50 ms is cut off at client_header.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	go func() {
		for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n") {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := c.Read(make([]byte, 100))
	cut := time.Since(start)
	c.Close()
	if n != 0 || cut > 2*time.Second {
		t.Errorf("slow header: %d bytes answered, closed after %s (client_header 300ms)", n, cut)
	}
	t.Logf("a header sent one byte every 50 ms was cut off after %s", cut.Round(time.Millisecond))

	// max_connections: 2 held, the third waits.
	waitConns := func(want int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d client connections", want), func() bool {
			v, _ := metricValue(scrape(t, srv), "wproxy_listener_connections", labels("listener", "web"))
			return int(v) == want
		})
	}
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	waitConns(2)
	third := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			third <- err.Error()
			return
		}
		resp.Body.Close()
		third <- resp.Status
	}()
	select {
	case got := <-third:
		t.Fatalf("a third connection was served beyond max_connections 2: %s", got)
	case <-time.After(300 * time.Millisecond):
	}
	held[0].Close()
	if got := <-third; got != "200 OK" {
		t.Fatalf("the third connection, once one closed: %s", got)
	}

	// A reload raising the limit lets a waiting client in at once.
	held[0], _ = net.Dial("tcp", addr)
	waitConns(2)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			third <- err.Error()
			return
		}
		resp.Body.Close()
		third <- resp.Status
	}()
	time.Sleep(100 * time.Millisecond)
	os.WriteFile(filepath.Join(dir, "test.yaml"), []byte(conf(3)), 0o644)
	if err := srv.ReloadFile(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-third:
		if got != "200 OK" {
			t.Fatalf("after raising max_connections: %s", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("raising max_connections by a reload did not let the waiting client in")
	}
	for _, c := range held {
		c.Close()
	}
}
