package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wproxy/wproxy/core/demo"
	"github.com/wproxy/wproxy/internal/gowasm"
)

const goodConfig = `listeners:
  - address: 127.0.0.1:0
    routes:
      - pool: web
pools:
  web:
    policy: round_robin
    backends:
      - address: 127.0.0.1:9001
        weight: 2
wasm:
  cache_dir: CACHE
`

func writeConfig(t *testing.T, dir, content string) string {
	t.Helper()
	path := filepath.Join(dir, "wproxy.yaml")
	content = strings.ReplaceAll(content, "CACHE", gowasm.CacheDir())
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every kind of bad configuration is refused by run and validate alike with
// exit status 2 and a message naming the file, line and field.
func TestBadConfigs(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "dir.wasm"), 0o755)
	os.WriteFile(filepath.Join(dir, "nomarker.wasm"), gowasm.Build(t, "./hostabi/lbhost/testdata/nomarker"), 0o644)
	tests := []struct {
		name, old, new, want string
	}{
		{"unknown field", "        weight: 2", "        wieght: 2", `wproxy.yaml:10: unknown field "wieght" in a backend`},
		{"bad address", "127.0.0.1:9001", "127.0.0.1:port", `wproxy.yaml:9: pools.web.backends[0].address: "127.0.0.1:port": port "port" is not a number`},
		{"unknown policy", "policy: round_robin", "policy: fastest", `wproxy.yaml:7: pools.web.policy: unknown policy "fastest"`},
		{"missing module", "policy: round_robin", "policy: nope.wasm", `wproxy.yaml:7: pools.web.policy: module ` + filepath.Join(dir, "nope.wasm") + `: no such file or directory`},
		{"unreadable module", "policy: round_robin", "policy: dir.wasm", `wproxy.yaml:7: pools.web.policy: module ` + filepath.Join(dir, "dir.wasm") + `: is a directory`},
		{"module without marker", "policy: round_robin", "policy: nomarker.wasm", `wproxy.yaml:7: pools.web.policy: module ` + filepath.Join(dir, "nomarker.wasm") + `: missing export wproxy_abi_lb_v1`},
		{"route to unknown pool", "      - pool: web", "      - pool: api", `wproxy.yaml:4: listeners[0].routes[0].pool: unknown pool "api" (pools: web)`},
		{"not yaml", "pools:", "pools: {", `wproxy.yaml:`},
	}
	for _, tt := range tests {
		for _, cmd := range []string{"run", "validate"} {
			t.Run(tt.name+"/"+cmd, func(t *testing.T) {
				path := writeConfig(t, dir, strings.Replace(goodConfig, tt.old, tt.new, 1))
				var stdout, stderr bytes.Buffer
				code := run([]string{cmd, "-config", path}, &stdout, &stderr)
				if code != 2 {
					t.Fatalf("exit status %d, want 2; stderr:\n%s", code, stderr.String())
				}
				if !strings.Contains(stderr.String(), tt.want) {
					t.Fatalf("stderr:\n%s\nwant it to contain %q", stderr.String(), tt.want)
				}
				if strings.Contains(stderr.String(), "panic") || strings.Contains(stderr.String(), "listening") {
					t.Fatalf("stderr shows a panic or a partial start:\n%s", stderr.String())
				}
			})
		}
	}
}

func TestValidateGood(t *testing.T) {
	path := writeConfig(t, t.TempDir(), goodConfig)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"validate", "-config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "ok (1 listeners, 1 pools)") {
		t.Fatalf("stdout %q", stdout.String())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"bogus"}, {"run"}, {"run", "-config"}, {"validate", "extra"}, {"demo", "-listen"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	var stdout bytes.Buffer
	if code := run([]string{"help"}, &stdout, io.Discard); code != 0 || !strings.Contains(stdout.String(), "wproxy demo") {
		t.Errorf("help: %d %q", code, stdout.String())
	}
}

// buildBinary builds wproxy once for the tests that run it as a process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wproxy")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs `wproxy run -config path` and waits until it listens; it
// returns the process, its first listener's address, and its remaining
// log lines. The process is killed at the end of the test if still running.
func startProcess(t *testing.T, bin, path string) (*exec.Cmd, string, chan string) {
	t.Helper()
	cmd := exec.Command(bin, "run", "-config", path)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads: drop
			}
		}
		close(lines)
	}()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("wproxy exited before listening")
			}
			if i := strings.Index(l, "address="); i >= 0 && strings.Contains(l, "msg=listening") {
				return cmd, strings.Fields(l[i+len("address="):])[0], lines
			}
		case <-time.After(60 * time.Second):
			t.Fatal("wproxy did not start listening")
		}
	}
}

// SIGTERM: the process stops accepting, finishes the slow request in
// flight, and exits 0.
func TestSIGTERMDrains(t *testing.T) {
	bin := buildBinary(t)
	backends, err := demo.StartBackends(1)
	if err != nil {
		t.Fatal(err)
	}
	defer backends.Close()
	path := writeConfig(t, t.TempDir(), strings.Replace(goodConfig, "127.0.0.1:9001", backends.Addrs[0], 1))
	cmd, addr, lines := startProcess(t, bin, path)
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow?ms=800")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, string(b), err}
	}()
	time.Sleep(200 * time.Millisecond) // the request is now waiting on the backend
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after SIGTERM")
	}
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "backend-1 served GET /slow?ms=800\n" {
		t.Fatalf("in-flight request: %d %q %v", r.status, r.body, r.err)
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("exit status %d", cmd.ProcessState.ExitCode())
	}
}

// The demo starts with no file and no flags beyond a free port, and every
// response names its backend.
func TestDemo(t *testing.T) {
	bin := buildBinary(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	adminAddr := ln2.Addr().String()
	ln2.Close()
	cmd := exec.Command(bin, "demo", "-listen", addr, "-admin", adminAddr)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Signal(syscall.SIGTERM)
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.Contains(sc.Text(), "proxy on http://"+addr) {
		t.Fatalf("first line %q", sc.Text())
	}
	go io.Copy(io.Discard, stdout)
	seen := map[string]int{}
	for i := 0; i < 5; i++ {
		resp, err := http.Get("http://" + addr + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		name := resp.Header.Get("X-Demo-Backend")
		if !strings.HasPrefix(string(body), name+" served GET /hello") {
			t.Fatalf("body %q, header %q", body, name)
		}
		seen[name]++
	}
	if fmt.Sprint(seen) != "map[backend-1:3 backend-2:1 backend-3:1]" {
		t.Fatalf("distribution %v, want 3:1:1", seen)
	}
	resp, err := http.Get("http://" + adminAddr + "/pools")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"name": "demo"`) || !strings.Contains(string(body), `"availability"`) {
		t.Fatalf("admin /pools: %d %s", resp.StatusCode, body)
	}
}

// The same key reaches the same backend on two separate wproxy processes
// given the same pool (listed in different orders), and after a restart.
func TestMaglevStickyAcrossProcessesAndRestarts(t *testing.T) {
	bin := buildBinary(t)
	backends, err := demo.StartBackends(5)
	if err != nil {
		t.Fatal(err)
	}
	defer backends.Close()
	config := func(order []int) string {
		var sb strings.Builder
		sb.WriteString("listeners: [{address: \"127.0.0.1:0\", routes: [{pool: p}]}]\npools:\n  p:\n    policy: maglev\n    hash_key: [cookie:session]\n    backends:\n")
		for _, i := range order {
			fmt.Fprintf(&sb, "      - address: %s\n", backends.Addrs[i])
		}
		sb.WriteString("wasm: {cache_dir: CACHE}\n")
		return sb.String()
	}
	routes := func(addr string) []string {
		out := make([]string, 300)
		for k := range out {
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			req.AddCookie(&http.Cookie{Name: "session", Value: fmt.Sprintf("s%04d", k)})
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			out[k] = resp.Header.Get("X-Demo-Backend")
		}
		return out
	}
	pathA := writeConfig(t, t.TempDir(), config([]int{0, 1, 2, 3, 4}))
	pathB := writeConfig(t, t.TempDir(), config([]int{4, 2, 0, 3, 1}))
	procA, addrA, _ := startProcess(t, bin, pathA)
	_, addrB, _ := startProcess(t, bin, pathB)
	a, b := routes(addrA), routes(addrB)
	used := map[string]bool{}
	for k := range a {
		used[a[k]] = true
		if a[k] != b[k] {
			t.Fatalf("key %d: process A sends it to %s, process B to %s", k, a[k], b[k])
		}
	}
	if len(used) != 5 {
		t.Fatalf("300 keys reached only %v", used)
	}
	procA.Process.Signal(syscall.SIGTERM)
	procA.Wait()
	_, addrA2, _ := startProcess(t, bin, pathA)
	again := routes(addrA2)
	for k := range a {
		if again[k] != a[k] {
			t.Fatalf("key %d went to %s before the restart and to %s after", k, a[k], again[k])
		}
	}
}
