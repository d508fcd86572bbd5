package server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wproxy/wproxy/internal/gowasm"
)

// backendProcess is examples/backend running as a real process.
type backendProcess struct {
	cmd  *exec.Cmd
	addr string
}

// buildExampleBackend builds examples/backend into t's temporary directory.
func buildExampleBackend(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "backend")
	cmd := exec.Command("go", "build", "-o", bin, "./examples/backend")
	cmd.Dir = gowasm.Root(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startBackendProcess(t *testing.T, bin, name string) *backendProcess {
	t.Helper()
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-name", name)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "addr="); i >= 0 && strings.Contains(line, "listening") {
			go io.Copy(io.Discard, stderr)
			return &backendProcess{cmd: cmd, addr: strings.Fields(line[i+len("addr="):])[0]}
		}
	}
	t.Fatalf("backend %s did not start", name)
	return nil
}

// killUnderLoad runs a steady load of GETs through a proxy in front of three
// backend processes, SIGKILLs one, and returns how many requests failed and
// how long after the kill the proxy last routed a request to the dead one.
func killUnderLoad(t *testing.T, bin, health string) (failed int64, lastRouted time.Duration, total int64) {
	bs := []*backendProcess{startBackendProcess(t, bin, "p0"), startBackendProcess(t, bin, "p1"), startBackendProcess(t, bin, "p2")}
	url, srv := startProxy(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    policy: round_robin
    health: %s
    backends: [{address: %s}, {address: %s}, {address: %s}]
wasm: {cache_dir: %s}
`, health, bs[0].addr, bs[1].addr, bs[2].addr, gowasm.CacheDir()))
	victim := srv.Pool("p").Members()[1]
	stop := make(chan struct{})
	var (
		wg   sync.WaitGroup
		bad  atomic.Int64
		sent atomic.Int64
	)
	for range 8 {
		wg.Go(func() {
			c := &http.Client{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url + "/")
				sent.Add(1)
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					bad.Add(1)
				}
			}
		})
	}
	time.Sleep(700 * time.Millisecond)
	killed := time.Now()
	bs[1].cmd.Process.Signal(syscall.SIGKILL)
	// Watch the victim's routed-request count until it stays still for 1 s.
	last, count := time.Now(), victim.Requests()
	for time.Since(last) < time.Second {
		time.Sleep(2 * time.Millisecond)
		if n := victim.Requests(); n != count {
			last, count = time.Now(), n
		}
	}
	close(stop)
	wg.Wait()
	return bad.Load(), max(last.Sub(killed), 0), sent.Load()
}

// SIGKILL one of three backend processes under a steady load of GETs: the
// requests it was serving and the connections it refuses go to the others,
// and no request fails.
func TestKillBackendUnderLoad(t *testing.T) {
	bin := buildExampleBackend(t)
	for _, tc := range []struct{ name, health string }{
		{"passive only", "{}"},
		{"active only", "{passive: {disable: true}, active: {interval: 100ms, timeout: 50ms, fall: 2}}"},
		{"active and passive", "{active: {interval: 100ms, timeout: 50ms, fall: 2}}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed, last, total := killUnderLoad(t, bin, tc.health)
			t.Logf("%s: %d of %d requests failed; the last request routed to the dead backend was %s after the kill",
				tc.name, failed, total, last.Round(time.Millisecond))
			if failed != 0 {
				t.Fatalf("%d requests failed", failed)
			}
			if tc.name == "active only" && last > 2*time.Second {
				t.Fatalf("requests still went to the dead backend %s after the kill", last)
			}
		})
	}
}
