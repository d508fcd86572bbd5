package etcdtest

import "testing"

// The server starts, keeps what is written across a restart, and etcdctl
// reaches it.
func TestStartStopRestart(t *testing.T) {
	s := Start(t, Options{})
	if out, err := s.Ctl("put", "/k", "v"); err != nil {
		t.Fatalf("put: %v %s", err, out)
	}
	s.Stop()
	if _, err := s.Ctl("--command-timeout=500ms", "get", "/k"); err == nil {
		t.Fatal("etcdctl reached a stopped server")
	}
	s.Restart()
	if out, err := s.Ctl("get", "/k", "--print-value-only"); err != nil || out != "v" {
		t.Fatalf("after restart: %q %v", out, err)
	}
}
