package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wproxy/wproxy/backendkit"
	"github.com/wproxy/wproxy/policies-wasm/load_aware/loadaware"
)

// liveness bounds how long a test waits for something that should happen
// much sooner; it only ends tests that would hang.
const liveness = 10 * time.Second

// await polls cond until it holds, failing the test after liveness.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %v for %s", liveness, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logBuffer collects a log written from many goroutines or by a process.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the lines of the log that contain s.
func (l *logBuffer) lines(s string) []string {
	var out []string
	for line := range strings.Lines(l.String()) {
		if strings.Contains(line, s) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+) .*pid=(\d+)`)

// listening returns the address and pid of every "listening" line so far.
func (l *logBuffer) listening() (addrs []string, pids []int) {
	for _, line := range l.lines("msg=listening") {
		if m := listeningRE.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[2])
			addrs, pids = append(addrs, m[1]), append(pids, pid)
		}
	}
	return addrs, pids
}

// buildBackend builds this command into a temporary directory.
func buildBackend(t *testing.T) string {
	t.Helper()
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		goCmd = "go"
	}
	bin := filepath.Join(t.TempDir(), "backend")
	if out, err := exec.Command(goCmd, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a running backend.
type process struct {
	cmd    *exec.Cmd
	log    *logBuffer
	addr   string // of the first start
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

// start runs bin with args and waits until it listens.
func start(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), log: &logBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("backend log:\n%s", p.log.String())
		}
	})
	await(t, "the backend to listen", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("backend exited: %v\n%s", p.err, p.log.String())
		default:
		}
		addrs, _ := p.log.listening()
		if len(addrs) > 0 {
			p.addr = addrs[0]
		}
		return p.addr != ""
	})
	return p
}

// exitCode waits for the process to exit and returns its status.
func (p *process) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(liveness):
		t.Fatalf("backend still running after %v", liveness)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

// get fetches url and returns the response with its body read.
func get(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp, string(b)
}

// figures are the load endpoint's answer.
type figures struct {
	Load     float64 `json:"load"`
	CPU      float64 `json:"cpu"`
	Mem      float64 `json:"mem"`
	InFlight int64   `json:"inflight"`
}

func load(t *testing.T, addr string) figures {
	t.Helper()
	resp, body := get(t, "GET", "http://"+addr+"/load")
	var f figures
	if resp.StatusCode != 200 {
		t.Fatalf("/load: %s %s", resp.Status, body)
	}
	if err := json.Unmarshal([]byte(body), &f); err != nil {
		t.Fatalf("/load: %v: %s", err, body)
	}
	return f
}

// answer is the result of a request made in the background.
type answer struct {
	code int
	body string
	err  error
}

func background(url string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			ch <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- answer{resp.StatusCode, string(b), err}
	}()
	return ch
}

// The watchdog, on a real process whose memory grows past the threshold
// and stays there: it drains (the request in flight completes), says why,
// and exits with status 75.
func TestWatchdogRestartsDegradedProcess(t *testing.T) {
	bin := buildBackend(t)
	p := start(t, bin, "-listen", "127.0.0.1:0", "-name", "wd", "-max-mem-mb", "100",
		"-watchdog-mem", "0.5", "-watchdog-for", "1s", "-interval", "100ms")
	if f := load(t, p.addr); f.Mem >= 0.5 {
		t.Fatalf("memory %v already past the threshold before /hog", f.Mem)
	}

	slow := background("http://" + p.addr + "/slow?ms=5000")
	await(t, "the slow request in flight", func() bool { return load(t, p.addr).InFlight == 1 })
	resp, body := get(t, "GET", "http://"+p.addr+"/hog?mb=96")
	if resp.StatusCode != 200 || body != "wd holds 96 MiB more, 96 MiB in all\n" {
		t.Fatalf("/hog: %s %q", resp.Status, body)
	}

	await(t, "the watchdog to trip", func() bool { return len(p.log.lines(`msg="watchdog: rule tripped"`)) > 0 })
	select {
	case a := <-slow:
		t.Fatalf("the slow request ended (%+v) before the watchdog tripped: the drain was not shown to wait for it", a)
	default:
	}
	select {
	case a := <-slow:
		if a.err != nil || a.code != 200 || a.body != "wd served GET /slow?ms=5000\n" {
			t.Fatalf("slow request during the drain: %+v", a)
		}
	case <-time.After(liveness):
		t.Fatal("the slow request did not end")
	}
	if code := p.exitCode(t); code != backendkit.ExitDegraded {
		t.Fatalf("exit status %d, want %d\n%s", code, backendkit.ExitDegraded, p.log.String())
	}

	trip := p.log.lines(`msg="watchdog: rule tripped"`)[0]
	m := regexp.MustCompile(`rule="mem > 0.5 for 1s" metric=mem value=(\S+) threshold=0.5 past_for=\S+ action="drain, exit 75"`).FindStringSubmatch(trip)
	if m == nil {
		t.Fatalf("trip line does not give the rule, value and threshold: %s", trip)
	}
	if v, err := strconv.ParseFloat(m[1], 64); err != nil || v <= 0.5 {
		t.Fatalf("tripped at value %q", m[1])
	}
	log := p.log.String()
	order := []string{`msg="watchdog: rule tripped"`, `msg="watchdog: draining"`, `msg="watchdog: drained"`, `msg="watchdog: exiting" code=75`}
	last := -1
	for _, s := range order {
		i := strings.Index(log, s)
		if i <= last {
			t.Fatalf("log lacks %q after %v:\n%s", s, order, log)
		}
		last = i
	}
}

// With -reexec the process that trips replaces itself with a fresh run of
// the program: same pid, memory back down, serving again.
func TestWatchdogReExecsProcess(t *testing.T) {
	bin := buildBackend(t)
	p := start(t, bin, "-listen", "127.0.0.1:0", "-name", "re", "-max-mem-mb", "100",
		"-watchdog-mem", "0.5", "-watchdog-for", "200ms", "-interval", "50ms", "-reexec")
	if resp, _ := get(t, "GET", "http://"+p.addr+"/hog?mb=96"); resp.StatusCode != 200 {
		t.Fatalf("/hog: %s", resp.Status)
	}
	var addrs []string
	var pids []int
	await(t, "the program to start again", func() bool { addrs, pids = p.log.listening(); return len(addrs) >= 2 })
	if pids[1] != p.cmd.Process.Pid || pids[0] != pids[1] {
		t.Fatalf("pids %v, want %d twice", pids, p.cmd.Process.Pid)
	}
	if !strings.Contains(p.log.String(), `msg="watchdog: re-executing" path=`+bin) {
		t.Fatalf("log:\n%s", p.log.String())
	}
	resp, body := get(t, "GET", "http://"+addrs[1]+"/")
	if resp.StatusCode != 200 || body != "re served GET /\n" {
		t.Fatalf("after re-exec: %s %q", resp.Status, body)
	}
	if f := load(t, addrs[1]); f.Mem >= 0.5 {
		t.Fatalf("memory %v after re-exec", f.Mem)
	}
	select {
	case <-p.exited:
		t.Fatalf("exited: %v", p.err)
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
}

// SIGTERM stops accepting, lets the request in flight finish and exits 0.
func TestSIGTERMShutsDownGracefully(t *testing.T) {
	bin := buildBackend(t)
	p := start(t, bin, "-listen", "127.0.0.1:0", "-name", "term")
	slow := background("http://" + p.addr + "/slow?ms=1500")
	await(t, "the slow request in flight", func() bool { return load(t, p.addr).InFlight == 1 })
	p.cmd.Process.Signal(syscall.SIGTERM)
	await(t, "the shutdown to begin", func() bool { return len(p.log.lines(`msg="shutting down"`)) > 0 })
	select {
	case a := <-slow:
		if a.err != nil || a.code != 200 || a.body != "term served GET /slow?ms=1500\n" {
			t.Fatalf("slow request during the shutdown: %+v", a)
		}
	case <-time.After(liveness):
		t.Fatal("the slow request did not end")
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	if len(p.log.lines("msg=stopped")) != 1 {
		t.Fatalf("log:\n%s", p.log.String())
	}
}

// runInProcess runs the backend in this process until the test ends.
func runInProcess(t *testing.T, args ...string) (addr string, log *logBuffer) {
	t.Helper()
	log = &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), log, func(a net.Addr) { addrc <- a })
	}()
	select {
	case a := <-addrc:
		addr = a.String()
	case c := <-code:
		t.Fatalf("run returned %d:\n%s", c, log.String())
	case <-time.After(liveness):
		t.Fatal("the backend did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case c := <-code:
			if c != 0 {
				t.Errorf("run returned %d after its context ended:\n%s", c, log.String())
			}
		case <-time.After(liveness):
			t.Error("run did not return after its context ended")
		}
	})
	return addr, log
}

// The routes answer in the formats README.md documents.
func TestRoutes(t *testing.T) {
	addr, _ := runInProcess(t, "-name", "b1", "-max-inflight", "4")
	base := "http://" + addr
	tests := []struct {
		method, path string
		code         int
		body         string // exact, or a prefix when it ends in "…"
	}{
		{"GET", "/", 200, "b1 served GET /\n"},
		{"GET", "/some/path?x=1&y=2", 200, "b1 served GET /some/path?x=1&y=2\n"},
		{"POST", "/form", 200, "b1 served POST /form\n"},
		{"GET", "/slow?ms=10", 200, "b1 served GET /slow?ms=10\n"},
		{"GET", "/slow?ms=soon", 400, "ms: want an integer from 0 to 600000, got \"soon\"\n"},
		{"GET", "/slow?ms=-1", 400, "ms: want…"},
		{"GET", "/hog?mb=1", 200, "b1 holds 1 MiB more, 1 MiB in all\n"},
		{"GET", "/hog?mb=2", 200, "b1 holds 2 MiB more, 3 MiB in all\n"},
		{"GET", "/hog?mb=99999", 400, "mb: want an integer from 0 to 16384, got \"99999\"\n"},
		{"GET", "/hog", 400, "mb: want…"},
		{"GET", "/health", 200, `{"status":"ok","cpu":…`},
		{"HEAD", "/health", 200, ""},
		{"POST", "/health", 405, "method not allowed\n"},
		{"GET", "/load", 200, `{"load":…`},
		{"DELETE", "/load", 405, "method not allowed\n"},
	}
	for _, tt := range tests {
		resp, body := get(t, tt.method, base+tt.path)
		want, prefix := strings.CutSuffix(tt.body, "…")
		if resp.StatusCode != tt.code || (prefix && !strings.HasPrefix(body, want)) || (!prefix && body != want) {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, resp.StatusCode, body, tt.code, tt.body)
		}
		if tt.code == 200 && !strings.HasPrefix(tt.path, "/health") && !strings.HasPrefix(tt.path, "/load") && resp.Header.Get("X-Backend") != "b1" {
			t.Errorf("%s %s: X-Backend %q", tt.method, tt.path, resp.Header.Get("X-Backend"))
		}
	}

	// /health: exactly status, cpu, mem and inflight, in JSON.
	resp, body := get(t, "GET", base+"/health")
	var h map[string]any
	if err := json.Unmarshal([]byte(body), &h); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/health: %v %q %v", err, body, resp.Header)
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"cpu", "inflight", "mem", "status"}) || h["status"] != "ok" || h["inflight"] != 0.0 {
		t.Fatalf("/health: %s", body)
	}

	// /load: what wproxy's load_aware policy reads, with requests in flight
	// counting against -max-inflight.
	ctx, cancel := context.WithCancel(context.Background())
	slow, _ := http.NewRequestWithContext(ctx, "GET", base+"/slow?ms=600000", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(slow); err == nil {
			resp.Body.Close()
		}
	}()
	var f figures
	await(t, "the slow request in flight", func() bool { f = load(t, addr); return f.InFlight == 1 })
	cancel()
	<-done
	if want := max(f.CPU, f.Mem, 0.25); f.Load != want {
		t.Fatalf("/load %+v: load %v, want %v", f, f.Load, want)
	}
	// The server sees the client go a little after the client does.
	await(t, "the cancelled request to end", func() bool { return load(t, addr).InFlight == 0 })
	_, body = get(t, "GET", base+"/load")
	got, ok := loadaware.ParseLoad([]byte(body))
	json.Unmarshal([]byte(body), &f)
	if !ok || got != max(f.CPU, f.Mem) || f.Load != got || f.InFlight != 0 {
		t.Fatalf("/load %s: load_aware reads %v, %v", body, got, ok)
	}
}

// -delay slows the routes down but /health and /load, which a delay of an
// hour would otherwise hold up.
func TestDelay(t *testing.T) {
	addr, _ := runInProcess(t, "-delay", "1h")
	for _, path := range []string{"/health", "/load"} {
		if resp, _ := get(t, "GET", "http://"+addr+path); resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("/ answered %s despite a delay of an hour", resp.Status)
	}
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"-nope"}, []string{"flag provided but not defined: -nope"}},
		{[]string{"extra"}, []string{`unexpected arguments: ["extra"]`}},
		{[]string{"-watchdog-mem", "-1", "-max-mem-mb", "-2", "-delay", "-1s", "-interval", "0", "-watchdog-for", "-1s", "-max-inflight", "-3"}, []string{
			"-watchdog-mem: -1 is not a fraction",
			"-max-mem-mb: -2 is negative",
			"-delay: -1s is negative",
			"-interval: 0s is not positive",
			"-watchdog-for: -1s is negative",
			"-max-inflight: -3 is negative",
		}},
		{[]string{"-listen", "127.0.0.1:notaport"}, []string{"listen tcp"}},
	}
	for _, tt := range tests {
		var log logBuffer
		code := run(context.Background(), tt.args, &log, nil)
		wantCode := 2
		if tt.args[0] == "-listen" {
			wantCode = 1
		}
		if code != wantCode {
			t.Errorf("%q: status %d, want %d\n%s", tt.args, code, wantCode, log.String())
		}
		for _, w := range tt.want {
			if !strings.Contains(log.String(), w) {
				t.Errorf("%q: output lacks %q:\n%s", tt.args, w, log.String())
			}
		}
	}
	var log logBuffer
	if code := run(context.Background(), []string{"-h"}, &log, nil); code != 0 || !strings.Contains(log.String(), "-watchdog-mem fraction") {
		t.Errorf("-h: status %d\n%s", code, log.String())
	}
}

// README.md documents every flag the command has.
func TestREADMEDocumentsFlags(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var help logBuffer
	run(context.Background(), []string{"-h"}, &help, nil)
	n := 0
	for line := range strings.Lines(help.String()) {
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok {
			name, _, _ := strings.Cut(f, " ")
			n++
			if !strings.Contains(string(b), "`-"+name) {
				t.Errorf("README.md does not document -%s", name)
			}
		}
	}
	if n < 9 {
		t.Fatalf("-h lists %d flags:\n%s", n, help.String())
	}
}
