// Command etcd is the default discovery module: it reads the backends
// registered under a key prefix in etcd (see package etcdadapter for the key
// layout) through etcd's v3 HTTP/JSON gateway, and hands the host the whole
// set whenever it changed.
//
// config (a pool's discovery source etcd: {...} becomes it):
//
//	{"endpoints": ["http://127.0.0.1:2379"], "prefix": "/wproxy/services/api",
//	 "username": "", "password": ""}
//
// endpoints and prefix are required; with username, the module authenticates
// (POST /v3/auth/authenticate) and sends the token with its reads, getting a
// new one once when etcd refuses it. The endpoints are tried in order from
// the last one that answered; one that gives no response or a 5xx passes the
// read to the next.
//
// # Poll by revision, not watch
//
// Each poll is one range read of the prefix (POST /v3/kv/range, 2 s timeout).
// etcd also offers a watch, which would tell of a change at once, but the
// gateway's watch is a long-lived streamed response, while the host's http
// returns a whole response within a call's budget: a watch would need a
// streaming ABI. A range per interval (default 1 s) is one small request per
// pool per second and follows every change within one interval. The answer
// carries etcd's revision, which moves with every write to the store: when it
// has not moved since the last poll, nothing changed and the module does not
// even decode the keys; when it has, the module decodes them and calls
// set_endpoints only if the set differs from the last one it gave, so an
// unchanged set is never rebuilt by the host.
package main

import (
	"errors"

	"github.com/wproxy/wproxy/policies-wasm/etcd/etcdadapter"
	"github.com/wproxy/wproxy/sdk/go/discovery"
)

func newSource(raw []byte) (discovery.Source, error) {
	cfg, err := etcdadapter.ParseConfig(raw)
	if err != nil {
		return nil, errors.New("etcd config: " + err.Error())
	}
	return etcdadapter.New(cfg, discovery.HTTP, discovery.SetEndpoints), nil
}

func init() { discovery.Register(newSource) }

func main() {}
