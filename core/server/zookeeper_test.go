package server

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/wproxy/wproxy/core/discovery/plugin/zkreg"
	"github.com/wproxy/wproxy/internal/zktest"
)

// A pool fed by the ZooKeeper plugin (a process of its own, over
// go-plugin): registered backends serve, and one whose session closes
// leaves the pool.
func TestZooKeeperPluginDiscovery(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "wproxy-zookeeper")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/wproxy/wproxy/cmd/wproxy-zookeeper").CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	zk := zktest.Start(t)
	a, b := startHealthBackend(t, "a"), startHealthBackend(t, "b")
	const path = "/wproxy/services/web"
	ra, err := zkreg.Register(zk.Servers(), path, zkreg.Entry{Address: a.addr, Weight: 1}, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	rb, err := zkreg.Register(zk.Servers(), path, zkreg.Entry{Address: b.addr, Weight: 1}, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	url, srv := startProxyIn(t, dir, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    backends: []
    discovery:
      - plugin: {command: ./wproxy-zookeeper}
        config: {servers: [%q], path: %s}
        interval: 50ms
admin: {address: "127.0.0.1:0"}
`, zk.Servers()[0], path))
	if got := sendN(t, url, 10); got["a"] != 5 || got["b"] != 5 {
		t.Fatalf("both registered: %v", got)
	}
	start := time.Now()
	rb.Close()
	waitFor(t, "b to leave", func() bool { return !balanced(srv, b.addr) })
	t.Logf("session closed → left the pool after %s", time.Since(start).Round(time.Millisecond))
	if got := sendN(t, url, 10); got["a"] != 10 {
		t.Fatalf("after b left: %v", got)
	}
}
