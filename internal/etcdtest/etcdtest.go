// Package etcdtest runs a real etcd server (the etcd binary, which `make
// deps` installs from Debian's etcd-server) for tests: on loopback ports of
// its own, with its data in the test's temporary directory, stopped when the
// test ends. A test may stop and start it again, on the same ports and data,
// to play an outage.
package etcdtest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wproxy/wproxy/internal/testproc"
)

// Server is one etcd member. Stop kills it (an outage); Restart starts it
// again on the same ports and data.
type Server struct {
	// URL is the client URL, e.g. http://127.0.0.1:PORT.
	URL string

	testproc.Process
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
	s := &Server{}
	s.Name, s.Timeout = "etcd", 30*time.Second
	dir := tb.TempDir()
	scheme := "http"
	if opts.CertFile != "" {
		scheme = "https"
	}
	client, peer := testproc.FreePort(tb), testproc.FreePort(tb)
	s.URL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	args := []string{bin,
		"--name", "test", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", s.URL, "--advertise-client-urls", s.URL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test=" + peerURL, "--initial-cluster-state", "new",
		"--log-level", "warn", "--logger", "zap",
	}
	if opts.CertFile != "" {
		args = append(args, "--cert-file", opts.CertFile, "--key-file", opts.KeyFile)
		if opts.ClientCA != "" {
			args = append(args, "--client-cert-auth", "--trusted-ca-file", opts.ClientCA)
		}
	}
	s.Args = args
	if opts.Ready != nil {
		s.Ready = func() error { return opts.Ready(s.URL) }
	} else {
		s.Ready = func() error {
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
	s.Start(tb)
	return s
}

// Ctl runs etcdctl against the server and returns its output.
func (s *Server) Ctl(args ...string) (string, error) {
	cmd := exec.Command("etcdctl", append([]string{"--endpoints", s.URL}, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
