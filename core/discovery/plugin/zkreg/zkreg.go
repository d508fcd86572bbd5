// Package zkreg registers a backend in ZooKeeper for wproxy's ZooKeeper
// discovery plugin (cmd/wproxy-zookeeper): an ephemeral znode
// <path>/<host:port> whose data is the JSON entry
//
//	{"address":"10.0.0.1:8080","weight":1,"zone":"a","meta":{"k":"v"}}
//
// It lives as long as the registration's ZooKeeper session: Close removes it
// at once, and a backend that dies loses it when its session expires. It is
// small on purpose (tests and examples); it does not re-register after a
// session expiry.
package zkreg

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Entry is the data of a registration znode.
type Entry struct {
	Address string            `json:"address"`
	Weight  uint32            `json:"weight"`
	Zone    string            `json:"zone,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// Registration is one registered backend.
type Registration struct {
	// Conn is the registration's own ZooKeeper session.
	Conn *zk.Conn
	// Path is the ephemeral znode.
	Path string
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// Register connects to servers with a session of its own and creates the
// ephemeral znode <dir>/<e.Address> (and dir's missing parents, persistent).
func Register(servers []string, dir string, e Entry, sessionTimeout time.Duration) (*Registration, error) {
	conn, events, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(quiet{}))
	if err != nil {
		return nil, err
	}
	deadline := time.After(10 * time.Second)
wait:
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				break wait
			}
		case <-deadline:
			conn.Close()
			return nil, fmt.Errorf("zkreg: no session with %s within 10s", strings.Join(servers, ","))
		}
	}
	go func() { // drain: go-zookeeper drops events when nobody reads
		for range events {
		}
	}()
	if err := EnsurePath(conn, dir); err != nil {
		conn.Close()
		return nil, err
	}
	data, err := json.Marshal(e)
	if err != nil {
		conn.Close()
		return nil, err
	}
	p := path.Join(dir, e.Address)
	if _, err := conn.Create(p, data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("zkreg: create %s: %w", p, err)
	}
	return &Registration{Conn: conn, Path: p}, nil
}

// Update replaces the registration's entry.
func (r *Registration) Update(e Entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = r.Conn.Set(r.Path, data, -1)
	return err
}

// Close deletes the znode and ends the session.
func (r *Registration) Close() {
	if err := r.Conn.Delete(r.Path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		slog.Debug("zkreg: delete", "path", r.Path, "err", err)
	}
	r.Conn.Close()
}

// EnsurePath creates p and its missing parents as persistent znodes.
func EnsurePath(conn *zk.Conn, p string) error {
	cur := ""
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == "" {
			continue
		}
		cur += "/" + part
		_, err := conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("zkreg: create %s: %w", cur, err)
		}
	}
	return nil
}
