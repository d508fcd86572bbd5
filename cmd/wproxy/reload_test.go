package main

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wproxy/wproxy/core/demo"
)

// servedBy asks the proxy once and returns the backend that answered.
func servedBy(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Demo-Backend")
}

// waitServedBy asks until the answer comes from want, for up to 10 s.
func waitServedBy(t *testing.T, addr, want string) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		if servedBy(t, addr) == want {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("requests did not reach %s within 10s", want)
	return 0
}

// SIGHUP reloads the file; a bad file is refused and the running
// configuration goes on; with reload_on_change, editing the file is enough.
func TestSIGHUPAndReloadOnChange(t *testing.T) {
	bin := buildBinary(t)
	backends, err := demo.StartBackends(2)
	if err != nil {
		t.Fatal(err)
	}
	defer backends.Close()
	dir := t.TempDir()
	to := func(i int, extra string) string {
		return strings.Replace(goodConfig, "127.0.0.1:9001", backends.Addrs[i], 1) + extra
	}
	path := writeConfig(t, dir, to(0, ""))
	cmd, addr, _ := startProcess(t, bin, path)
	if got := servedBy(t, addr); got != "backend-1" {
		t.Fatalf("before reload: served by %q", got)
	}

	writeConfig(t, dir, to(1, ""))
	cmd.Process.Signal(syscall.SIGHUP)
	t.Logf("SIGHUP: the new backend served after %s", waitServedBy(t, addr, "backend-2"))

	writeConfig(t, dir, to(0, "bogus: 1\n"))
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	for range 20 {
		if got := servedBy(t, addr); got != "backend-2" {
			t.Fatalf("after a refused reload: served by %q", got)
		}
	}

	// Turning the watch on takes a reload; from then on a change is enough.
	writeConfig(t, dir, to(1, "reload_on_change: true\n"))
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	writeConfig(t, dir, to(0, "reload_on_change: true\n"))
	t.Logf("file changed: the new backend served after %s", waitServedBy(t, addr, "backend-1"))
}
