package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// startNamedEcho starts a TCP server that answers each line with its name
// and the line.
func startNamedEcho(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "%s %s\n", name, sc.Text())
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func tcpAsk(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s\n", line)
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return strings.TrimSpace(got)
}

// A tcp listener balances connections over its pool with the pool's
// policy; a reload can point it at another pool while it keeps listening.
func TestTCPListener(t *testing.T) {
	a, b, c := startNamedEcho(t, "a"), startNamedEcho(t, "b"), startNamedEcho(t, "c")
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	conf := func(pool string) string {
		return fmt.Sprintf(`
listeners:
  - {address: %q, mode: tcp, pool: %s, hash: none}
pools:
  two: {backends: [{address: %s}, {address: %s}], health: {passive: {disable: true}}}
  one: {backends: [{address: %s}]}
admin: {address: "127.0.0.1:0"}
`, addr, pool, a, b, c)
	}
	dir := t.TempDir()
	_, srv := startProxyIn(t, dir, conf("two"))
	seen := map[string]int{}
	for i := range 10 {
		got := tcpAsk(t, addr, fmt.Sprint("hello ", i))
		name, rest, _ := strings.Cut(got, " ")
		if rest != fmt.Sprint("hello ", i) {
			t.Fatalf("answer %q", got)
		}
		seen[name]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("round robin over two: %v", seen)
	}
	// "hello N\n" is 8 bytes in; "a hello N\n" 10 bytes out. The proxy
	// counts a connection's bytes as it finishes it.
	var accepted, in, out float64
	waitFor(t, "the tcp metrics", func() bool {
		fams := scrape(t, srv)
		accepted, _ = metricValue(fams, "wproxy_tcp_connections_total", nil)
		in, _ = metricValue(fams, "wproxy_tcp_bytes_total", labels("direction", "in"))
		out, _ = metricValue(fams, "wproxy_tcp_bytes_total", labels("direction", "out"))
		return accepted == 10 && in == 80 && out == 100
	})
	if err := srv.Reload(t.Context(), parseConfig(t, dir, conf("one"))); err != nil {
		t.Fatal(err)
	}
	if got := tcpAsk(t, addr, "after"); got != "c after" {
		t.Fatalf("after the reload: %q", got)
	}
}

// Two listeners that both ask for a free port are two listeners, each with
// its own routes, also after a reload.
func TestTwoFreePortListeners(t *testing.T) {
	a, c := startNamedEcho(t, "a"), startNamedEcho(t, "c")
	conf := fmt.Sprintf(`
listeners:
  - {name: one, address: "127.0.0.1:0", mode: tcp, pool: pa}
  - {name: two, address: "127.0.0.1:0", mode: tcp, pool: pc}
pools:
  pa: {backends: [{address: %s}]}
  pc: {backends: [{address: %s}]}
`, a, c)
	dir := t.TempDir()
	_, srv := startProxyIn(t, dir, conf)
	addrs := srv.Addrs()
	if len(addrs) != 2 || addrs[0] == addrs[1] {
		t.Fatalf("addresses %v", addrs)
	}
	check := func() {
		t.Helper()
		if got := tcpAsk(t, addrs[0], "x"); got != "a x" {
			t.Fatalf("listener one: %q", got)
		}
		if got := tcpAsk(t, addrs[1], "x"); got != "c x" {
			t.Fatalf("listener two: %q", got)
		}
	}
	check()
	if err := srv.Reload(t.Context(), parseConfig(t, dir, conf)); err != nil {
		t.Fatal(err)
	}
	if got := srv.Addrs(); got[0] != addrs[0] || got[1] != addrs[1] {
		t.Fatalf("after a reload: %v, before %v", got, addrs)
	}
	check()
}
