// Command wproxy-zookeeper is wproxy's ZooKeeper discovery adapter: a plugin
// process (core/discovery/plugin) that watches a ZooKeeper path and sends
// wproxy the backends registered under it.
//
// Configuration (JSON, handed over by wproxy):
//
//	{"servers": ["127.0.0.1:2181"], "path": "/wproxy/services/api", "session_timeout_ms": 10000}
//
// Backends register ephemeral znodes <path>/<host:port> whose data is
//
//	{"address":"10.0.0.1:8080","weight":1,"zone":"a","meta":{"k":"v"}}
//
// (the layout of etcd discovery; weight 0 or absent means 1; a child whose
// data is not such an entry is skipped with a log line). The adapter watches
// the children and each child's data and sends the full set on every change;
// when it loses its connection to ZooKeeper it says so (wproxy keeps the last
// set) and reconnects. Run by hand it only says it is a plugin.
package main

import (
	"github.com/wproxy/wproxy/core/discovery/plugin"
)

func main() {
	plugin.Serve(&adapter{log: plugin.Logger()})
}
