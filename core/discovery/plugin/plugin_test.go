package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"

	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/discovery/plugin/zkreg"
	"github.com/wproxy/wproxy/internal/zktest"
)

var (
	raceEnabled bool
	zkPlugin    string // the wproxy-zookeeper binary, built by TestMain
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wproxy-zookeeper-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	zkPlugin = filepath.Join(dir, "wproxy-zookeeper")
	args := []string{"build", "-o", zkPlugin}
	if raceEnabled {
		args = append(args, "-race")
		// A race-enabled binary sleeps 1 s at exit by default.
		os.Setenv("GORACE", "atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	}
	cmd := exec.Command("go", append(args, "github.com/wproxy/wproxy/cmd/wproxy-zookeeper")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the zookeeper plugin:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testLogger collects the log and prints it when the test fails.
func testLogger(t *testing.T) *slog.Logger {
	w := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("log:\n%s", w.String())
		}
	})
	level := slog.LevelInfo
	if os.Getenv("WPROXY_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *logBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *logBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func zkConfig(zk *zktest.Server, path string) []byte {
	return fmt.Appendf(nil, `{"servers": [%q], "path": %q, "session_timeout_ms": 10000}`, zk.Addr, path)
}

func register(t *testing.T, zk *zktest.Server, path string, e zkreg.Entry) *zkreg.Registration {
	t.Helper()
	r, err := zkreg.Register(zk.Servers(), path, e, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func addrs(set []config.Backend) string {
	var s []string
	for _, b := range set {
		s = append(s, b.Address)
	}
	return strings.Join(s, ",")
}

// caller plays discovery.Manager: it keeps the last good set.
type caller struct {
	l      *Looker
	kept   []config.Backend
	errs   int
	lastEr error
}

func (c *caller) look(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	set, changed, err := c.l.Look(ctx)
	if err != nil {
		c.errs++
		c.lastEr = err
		return err
	}
	if changed {
		c.kept = set
	}
	return nil
}

// waitFor looks every 5 ms until cond holds of the kept set (with no error
// when okOnly), and returns how long it took.
func (c *caller) waitFor(t *testing.T, what string, within time.Duration, cond func(set []config.Backend, err error) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := c.look(t)
		if cond(c.kept, err) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v; kept %q, last error %v", what, within, addrs(c.kept), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hasAddrs(want string) func([]config.Backend, error) bool {
	return func(set []config.Backend, err error) bool { return err == nil && addrs(set) == want }
}

func TestZooKeeperAddRemove(t *testing.T) {
	t.Parallel()
	zk := zktest.Start(t)
	const path = "/wproxy/services/api"
	l, err := NewLooker(zkPlugin, nil, zkConfig(zk, path), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := &caller{l: l}
	// The path does not exist yet: an empty set, not an error.
	if err := c.look(t); err != nil {
		t.Fatalf("first Look: %v", err)
	}
	if len(c.kept) != 0 {
		t.Fatalf("first set %v, want empty", c.kept)
	}

	start := time.Now()
	register(t, zk, path, zkreg.Entry{Address: "127.0.0.1:9002", Weight: 3, Zone: "b", Meta: map[string]string{"v": "2"}})
	r1 := register(t, zk, path, zkreg.Entry{Address: "127.0.0.1:9001"})
	c.waitFor(t, "two registrations", time.Second, hasAddrs("127.0.0.1:9001,127.0.0.1:9002"))
	t.Logf("two registrations seen %v after the first one began", time.Since(start))
	want := []config.Backend{
		{Address: "127.0.0.1:9001", Weight: 1},
		{Address: "127.0.0.1:9002", Weight: 3, Zone: "b", Meta: map[string]string{"v": "2"}},
	}
	if fmt.Sprint(c.kept) != fmt.Sprint(want) {
		t.Fatalf("set %v, want %v", c.kept, want)
	}
	if _, changed, err := l.Look(context.Background()); changed || err != nil {
		t.Fatalf("Look again: changed %v, err %v; want unchanged", changed, err)
	}

	// A child that is not an entry is skipped; a weight change is seen.
	if _, err := r1.Conn.Create(path+"/junk", []byte("not json"), gozk.FlagEphemeral, gozk.WorldACL(gozk.PermAll)); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := r1.Update(zkreg.Entry{Address: "127.0.0.1:9001", Weight: 7}); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "weight change", time.Second, func(set []config.Backend, err error) bool {
		return err == nil && len(set) == 2 && set[0].Weight == 7
	})
	t.Logf("weight change seen after %v", time.Since(start))

	// Closing a registration's session removes its ephemeral node.
	start = time.Now()
	r1.Close()
	c.waitFor(t, "registration closed", time.Second, hasAddrs("127.0.0.1:9002"))
	t.Logf("closed registration gone after %v", time.Since(start))

	start = time.Now()
	l.Close()
	t.Logf("Looker closed in %v", time.Since(start))
	if _, _, err := l.Look(context.Background()); err == nil {
		t.Fatal("Look after Close worked")
	}
}

func TestPluginKilled(t *testing.T) {
	t.Parallel()
	zk := zktest.Start(t)
	const path = "/svc/kill"
	register(t, zk, path, zkreg.Entry{Address: "127.0.0.1:9101"})
	l, err := NewLooker(zkPlugin, nil, zkConfig(zk, path), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := &caller{l: l}
	c.waitFor(t, "first set", 2*time.Second, hasAddrs("127.0.0.1:9101"))

	pid := l.pid()
	if pid == 0 {
		t.Fatal("no plugin pid")
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d := c.waitFor(t, "an error while the plugin is down", 2*time.Second, func(_ []config.Backend, err error) bool { return err != nil })
	t.Logf("plugin down reported after %v: %v", d, c.lastEr)
	if addrs(c.kept) != "127.0.0.1:9101" {
		t.Fatalf("kept set %q", addrs(c.kept))
	}
	// A change while the plugin is down is seen once it is back.
	register(t, zk, path, zkreg.Entry{Address: "127.0.0.1:9102"})
	c.waitFor(t, "the restarted plugin's set", 5*time.Second, hasAddrs("127.0.0.1:9101,127.0.0.1:9102"))
	t.Logf("plugin killed -> restarted and change seen after %v (%d failed Looks meanwhile)", time.Since(killed), c.errs)
	if n := l.Restarts(); n != 1 {
		t.Errorf("restarts %d, want 1", n)
	}
	if p := l.pid(); p == pid || p == 0 {
		t.Errorf("pid after restart %d (was %d)", p, pid)
	}
}

func TestZooKeeperOutage(t *testing.T) {
	t.Parallel()
	zk := zktest.Start(t)
	const path = "/svc/outage"
	register(t, zk, path, zkreg.Entry{Address: "127.0.0.1:9201"})
	l, err := NewLooker(zkPlugin, nil, zkConfig(zk, path), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := &caller{l: l}
	c.waitFor(t, "first set", 2*time.Second, hasAddrs("127.0.0.1:9201"))

	zk.Stop()
	d := c.waitFor(t, "an error while zookeeper is down", 5*time.Second, func(_ []config.Backend, err error) bool { return err != nil })
	t.Logf("zookeeper down reported after %v: %v", d, c.lastEr)
	if addrs(c.kept) != "127.0.0.1:9201" {
		t.Fatalf("kept set %q", addrs(c.kept))
	}
	if err := c.look(t); err == nil {
		t.Fatal("Look succeeded with zookeeper down")
	}

	start := time.Now()
	zk.Restart()
	t.Logf("zookeeper restarted in %v", time.Since(start))
	start = time.Now()
	register(t, zk, path, zkreg.Entry{Address: "127.0.0.1:9202"})
	d = c.waitFor(t, "a registration after the restart", 10*time.Second, func(set []config.Backend, err error) bool {
		return err == nil && strings.Contains(addrs(set), "127.0.0.1:9202")
	})
	t.Logf("registration after the restart seen after %v (set %s)", d, addrs(c.kept))
	if l.Restarts() != 0 {
		t.Errorf("the plugin restarted %d times; a ZooKeeper outage should not restart it", l.Restarts())
	}
}

func TestBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, config, want string }{
		{"no servers", `{"path": "/a"}`, "servers"},
		{"no path", `{"servers": ["127.0.0.1:2181"]}`, "path"},
		{"relative path", `{"servers": ["127.0.0.1:2181"], "path": "a/b"}`, "path"},
		{"bad server", `{"servers": ["nowhere"], "path": "/a"}`, "servers[0]"},
		{"unknown field", `{"servers": ["127.0.0.1:2181"], "path": "/a", "sever": 1}`, "sever"},
		{"not json", `servers: [x]`, "config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			l, err := NewLooker(zkPlugin, nil, []byte(tc.config), testLogger(t))
			if err == nil {
				l.Close()
				t.Fatal("NewLooker worked")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
			t.Logf("%v (in %v)", err, time.Since(start))
		})
	}
	if _, err := NewLooker(filepath.Join(t.TempDir(), "missing"), nil, nil, testLogger(t)); err == nil {
		t.Fatal("NewLooker of a missing binary worked")
	}
}

func TestZooKeeperDownAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := fmt.Appendf(nil, `{"servers": [%q], "path": "/svc/down"}`, addr)
	l, err := NewLooker(zkPlugin, nil, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err) // an unreachable registry is not a configuration error
	}
	defer l.Close()
	start := time.Now()
	_, _, err = l.Look(context.Background())
	if err == nil || errors.Is(err, ErrNoSetYet) {
		t.Fatalf("Look with zookeeper unreachable: %v", err)
	}
	t.Logf("unreachable at start reported in %v: %v", time.Since(start), err)
}
