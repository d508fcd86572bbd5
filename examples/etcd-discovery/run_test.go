// Package etcddiscovery holds the etcd discovery example; its test runs
// run.sh as a user would.
package etcddiscovery

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// run.sh shows both backends serving, then only the one left after the
// other was killed with SIGKILL and its lease expired.
func TestRunScript(t *testing.T) {
	cmd := exec.Command("sh", "run.sh")
	cmd.Env = append(cmd.Environ(),
		fmt.Sprintf("ETCD_PORT=%d", freePort(t)), fmt.Sprintf("PROXY_PORT=%d", freePort(t)),
		fmt.Sprintf("BACKEND_PORT=%d", freePort(t)), fmt.Sprintf("BACKEND2_PORT=%d", freePort(t)),
		fmt.Sprintf("ADMIN_PORT=%d", freePort(t)), fmt.Sprintf("ETCD_PEER_PORT=%d", freePort(t)), "TTL=2s")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("run.sh: %v", err)
	}
	s := string(out)
	killed := strings.Index(s, "killing backend-1")
	if killed < 0 || !strings.Contains(s[:killed], "3 backend-1 served") || !strings.Contains(s[:killed], "3 backend-2 served") {
		t.Fatal("both backends did not serve before the kill")
	}
	if !strings.Contains(s[killed:], "left the pool") || !strings.Contains(s[killed:], "6 backend-2 served") || strings.Contains(s[killed:], "backend-1 served") {
		t.Fatal("after the kill, backend-2 alone should serve")
	}
}
