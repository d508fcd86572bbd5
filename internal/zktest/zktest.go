// Package zktest runs a real ZooKeeper server (Debian's zookeeper package,
// which `make deps` installs, run with Java directly) for tests: standalone,
// on a loopback port of its own, with its data and configuration in the
// test's temporary directory, stopped when the test ends. A test may stop and
// start it again, on the same port and data, to play an outage.
package zktest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wproxy/wproxy/internal/testproc"
)

// Jars is where the zookeeper package puts its jar; its manifest names the
// jars it needs.
var Jars = []string{"/usr/share/java/zookeeper.jar"}

// Server is one standalone ZooKeeper server. Stop kills it (an outage);
// Restart starts it again on the same port and data.
type Server struct {
	// Addr is the client address, 127.0.0.1:PORT.
	Addr string

	testproc.Process
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
	s := &Server{}
	s.Name, s.Dir, s.Timeout = "zookeeper", tb.TempDir(), 60*time.Second
	s.Ready = s.ready
	port := testproc.FreePort(tb)
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	cfg := filepath.Join(s.Dir, "zoo.cfg")
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
`, filepath.Join(s.Dir, "data"), port)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	s.Args = []string{java,
		"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-Dzookeeper.admin.enableServer=false",
		"-Dzookeeper.snapshot.trust.empty=true",
		"-cp", strings.Join(cp, ":"),
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg,
	}
	tb.Cleanup(s.Stop)
	s.Start(tb)
	return s
}

func slicesCopy(s []string) []string { return append([]string(nil), s...) }

// Servers returns the client address as a one-element server list.
func (s *Server) Servers() []string { return []string{s.Addr} }

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
