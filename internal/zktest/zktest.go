// Package zktest runs a real ZooKeeper server (Debian's zookeeper package,
// which `make deps` installs, run with Java directly) for tests: standalone,
// on a loopback port of its own, with its data and configuration in the
// test's temporary directory, stopped when the test ends. A test may stop and
// start it again, on the same port and data, to play an outage.
package zktest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Jars is where the zookeeper package puts its jar; its manifest names the
// jars it needs.
var Jars = []string{"/usr/share/java/zookeeper.jar"}

// Server is one standalone ZooKeeper server.
type Server struct {
	// Addr is the client address, 127.0.0.1:PORT.
	Addr string

	tb     testing.TB
	dir    string
	args   []string
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	output *bytes.Buffer
}

// Start starts a ZooKeeper server and waits until it serves. It fails the
// test (never skips it) when Java or ZooKeeper is missing.
func Start(tb testing.TB) *Server {
	tb.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		tb.Fatal("java is not installed; run `make deps` (Debian package zookeeper, which brings default-jre)")
	}
	cp := slicesCopy(Jars)
	for _, j := range Jars {
		if _, err := os.Stat(j); err != nil {
			tb.Fatalf("%s is missing; run `make deps` (Debian package zookeeper)", j)
		}
	}
	// ZooKeeper logs through slf4j; a binding that prints warnings only,
	// when there is one (otherwise slf4j says it has none and is silent).
	if _, err := os.Stat("/usr/share/java/slf4j-simple.jar"); err == nil {
		cp = append(cp, "/usr/share/java/slf4j-simple.jar")
	}
	s := &Server{tb: tb, dir: tb.TempDir()}
	port := freePort(tb)
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	cfg := filepath.Join(s.dir, "zoo.cfg")
	conf := fmt.Sprintf(`tickTime=500
initLimit=10
syncLimit=5
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
maxSessionTimeout=60000
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
forceSync=no
preAllocSize=1024
`, filepath.Join(s.dir, "data"), port)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	s.args = []string{java,
		"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-Dzookeeper.admin.enableServer=false",
		"-Dzookeeper.snapshot.trust.empty=true",
		"-cp", strings.Join(cp, ":"),
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg,
	}
	tb.Cleanup(s.Stop)
	s.Restart()
	return s
}

func slicesCopy(s []string) []string { return append([]string(nil), s...) }

// Servers returns the client address as a one-element server list.
func (s *Server) Servers() []string { return []string{s.Addr} }

// Restart starts the server again after Stop, on the same port and data.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return
	}
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Dir = s.dir
	s.output = &bytes.Buffer{}
	out := &lockedWriter{b: s.output}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.tb.Fatal(err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() { cmd.Wait(); close(done) }()
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.ready()
		if err == nil {
			return
		}
		select {
		case <-done:
			s.tb.Fatalf("zookeeper exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("zookeeper not ready after 60s: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready asks the server "srvr" and wants a Mode line: a server that is up
// but not serving yet says so instead.
func (s *Server) ready() error {
	out, err := s.FourLetter("srvr")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Mode:") {
		return fmt.Errorf("not serving: %q", strings.TrimSpace(out))
	}
	return nil
}

// FourLetter sends a four-letter command (srvr and ruok are allowed) and
// returns the answer.
func (s *Server) FourLetter(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", err
	}
	var b strings.Builder
	_, err = io.Copy(&b, bufio.NewReader(c))
	return b.String(), err
}

// Stop stops the server (SIGKILL: an outage, not a shutdown) and waits for
// it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

type lockedWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
