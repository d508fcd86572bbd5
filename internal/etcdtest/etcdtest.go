// Package etcdtest runs a real etcd server (the etcd binary, which `make
// deps` installs from Debian's etcd-server) for tests: on loopback ports of
// its own, with its data in the test's temporary directory, stopped when the
// test ends. A test may stop and start it again, on the same ports and data,
// to play an outage.
package etcdtest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is one etcd member.
type Server struct {
	// URL is the client URL, e.g. http://127.0.0.1:PORT.
	URL string

	tb       testing.TB
	dir      string
	peerURL  string
	args     []string
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	stderr   *bytes.Buffer
	scheme   string
	ready    func() error
	disabled bool
}

// Options change how the server runs.
type Options struct {
	// TLS, when set, serves clients over TLS with these files (PEM); with
	// ClientCA, clients must present a certificate it signed.
	CertFile, KeyFile, ClientCA string
	// Ready, when set, replaces the default readiness check (GET /health).
	Ready func(url string) error
}

// Start starts an etcd server and waits until it answers. It fails the test
// (never skips it) when the etcd binary is missing.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		tb.Fatal("etcd is not installed; run `make deps` (Debian package etcd-server)")
	}
	s := &Server{tb: tb, dir: tb.TempDir(), scheme: "http"}
	if opts.CertFile != "" {
		s.scheme = "https"
	}
	client, peer := freePort(tb), freePort(tb)
	s.URL = fmt.Sprintf("%s://127.0.0.1:%d", s.scheme, client)
	s.peerURL = fmt.Sprintf("http://127.0.0.1:%d", peer)
	s.args = []string{
		"--name", "test", "--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", s.URL, "--advertise-client-urls", s.URL,
		"--listen-peer-urls", s.peerURL, "--initial-advertise-peer-urls", s.peerURL,
		"--initial-cluster", "test=" + s.peerURL, "--initial-cluster-state", "new",
		"--log-level", "warn", "--logger", "zap",
	}
	if opts.CertFile != "" {
		s.args = append(s.args, "--cert-file", opts.CertFile, "--key-file", opts.KeyFile)
		if opts.ClientCA != "" {
			s.args = append(s.args, "--client-cert-auth", "--trusted-ca-file", opts.ClientCA)
		}
	}
	s.args = append([]string{bin}, s.args...)
	if opts.Ready != nil {
		s.ready = func() error { return opts.Ready(s.URL) }
	} else {
		s.ready = func() error {
			resp, err := http.Get(s.URL + "/health")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
	}
	tb.Cleanup(s.Stop)
	s.Restart()
	return s
}

// Restart starts the server again after Stop, on the same ports and data.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return
	}
	cmd := exec.Command(s.args[0], s.args[1:]...)
	s.stderr = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.tb.Fatal(err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() { cmd.Wait(); close(done) }()
	s.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.ready()
		if err == nil {
			return
		}
		select {
		case <-done:
			s.tb.Fatalf("etcd exited: %s", s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("etcd not ready after 30s: %v\n%s", err, s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
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

// Ctl runs etcdctl against the server and returns its output.
func (s *Server) Ctl(args ...string) (string, error) {
	cmd := exec.Command("etcdctl", append([]string{"--endpoints", s.URL}, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
