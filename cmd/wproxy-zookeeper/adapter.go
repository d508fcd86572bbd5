package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/wproxy/wproxy/core/discovery/plugin"
)

// Config is the adapter's configuration.
type Config struct {
	// Servers are the ZooKeeper servers, host:port. Required.
	Servers []string `json:"servers"`
	// Path is the znode whose children are the backends. Required.
	Path string `json:"path"`
	// SessionTimeoutMS is the ZooKeeper session timeout; default 10000.
	SessionTimeoutMS int `json:"session_timeout_ms"`
}

const (
	defaultSessionTimeout = 10 * time.Second
	// connectGrace is how long the adapter waits for a first session before
	// it reports ZooKeeper unreachable.
	connectGrace = time.Second
)

type adapter struct {
	log *slog.Logger
	cfg Config
}

func (a *adapter) Init(data []byte) error {
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return err
	}
	var errs []error
	if len(c.Servers) == 0 {
		errs = append(errs, errors.New("servers: at least one ZooKeeper server (host:port) is required"))
	}
	for i, s := range c.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("servers[%d]: %q is not host:port", i, s))
		}
	}
	switch {
	case c.Path == "":
		errs = append(errs, errors.New("path: required (e.g. /wproxy/services/api)"))
	case !strings.HasPrefix(c.Path, "/") || (len(c.Path) > 1 && strings.HasSuffix(c.Path, "/")) || path.Clean(c.Path) != c.Path:
		errs = append(errs, fmt.Errorf("path: %q is not an absolute znode path", c.Path))
	}
	if c.SessionTimeoutMS < 0 {
		errs = append(errs, fmt.Errorf("session_timeout_ms: %d is negative", c.SessionTimeoutMS))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	a.cfg = c
	return nil
}

// entry is a child's data.
type entry struct {
	Address string            `json:"address"`
	Weight  uint32            `json:"weight"`
	Zone    string            `json:"zone"`
	Meta    map[string]string `json:"meta"`
}

// zkLogger sends go-zookeeper's messages to the plugin's log at debug: the
// adapter reports what matters itself.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) { z.l.Debug(fmt.Sprintf(format, args...)) }

func (a *adapter) Watch(ctx context.Context, send func([]plugin.Endpoint, error)) error {
	timeout := defaultSessionTimeout
	if a.cfg.SessionTimeoutMS > 0 {
		timeout = time.Duration(a.cfg.SessionTimeoutMS) * time.Millisecond
	}
	conn, events, err := zk.Connect(a.cfg.Servers, timeout, zk.WithLogger(zkLogger{a.log}))
	if err != nil {
		return err
	}
	defer conn.Close()
	w := &watcher{a: a, conn: conn, send: send, fired: make(chan string, 64), done: make(chan struct{}), watched: map[string]bool{}}
	defer close(w.done)
	var childEv <-chan zk.Event
	connected, reported := false, false
	unreachable := func() {
		if !reported {
			a.log.Warn("zookeeper unreachable; reconnecting", "servers", a.cfg.Servers)
			send(nil, fmt.Errorf("zookeeper %s unreachable; reconnecting", strings.Join(a.cfg.Servers, ",")))
			reported = true
		}
	}
	// go-zookeeper says nothing while it fails to connect at all: without a
	// session after connectGrace, the registry is reported unreachable.
	grace := time.NewTimer(connectGrace)
	defer grace.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-grace.C:
			if !connected {
				unreachable()
			}
			continue
		case ev, ok := <-events:
			if !ok {
				return errors.New("zookeeper connection closed")
			}
			if ev.Type != zk.EventSession {
				continue
			}
			switch ev.State {
			case zk.StateHasSession:
				a.log.Info("zookeeper session established", "server", ev.Server, "session", fmt.Sprintf("%#x", conn.SessionID()))
				connected = true
			case zk.StateExpired:
				a.log.Warn("zookeeper session expired; starting a new one")
				w.watched = map[string]bool{} // the server dropped every watch
				childEv = nil
				connected = false
				if !reported {
					send(nil, errors.New("zookeeper session expired; reconnecting"))
					reported = true
				}
				continue
			case zk.StateDisconnected:
				connected = false
				unreachable()
				continue
			default:
				continue
			}
		case ev := <-childEv:
			childEv = nil
			if ev.Type == zk.EventNotWatching {
				continue // the session's end; its event comes on events
			}
		case child := <-w.fired:
			delete(w.watched, child)
		}
		if !connected {
			continue
		}
		ch, err := w.list(childEv == nil, reported)
		if err != nil {
			a.log.Warn("listing zookeeper path failed", "path", a.cfg.Path, "err", err)
			if !reported {
				send(nil, fmt.Errorf("zookeeper: %s: %v", a.cfg.Path, err))
				reported = true
			}
			continue // retried at the next event (a reconnection)
		}
		if ch != nil {
			childEv = ch
		}
		reported = false
	}
}

// watcher lists a path's children, watching them and their data.
type watcher struct {
	a       *adapter
	conn    *zk.Conn
	send    func([]plugin.Endpoint, error)
	fired   chan string     // a child whose data watch fired
	done    chan struct{}   // closed when Watch returns
	watched map[string]bool // children with a data watch set
	last    []plugin.Endpoint
	sent    bool
	skipped map[string]string // child -> why, logged once per reason
}

// skip logs, once per child and reason, that a child is not a backend.
func (w *watcher) skip(child, why string, args ...any) {
	if w.skipped == nil {
		w.skipped = map[string]string{}
	}
	key := why + fmt.Sprint(args...)
	if w.skipped[child] == key {
		return
	}
	w.skipped[child] = key
	w.a.log.Warn(why, append([]any{"znode", path.Join(w.a.cfg.Path, child)}, args...)...)
}

// list reads the children and their data and sends the set if it changed
// (or force); with watchChildren it sets a new children watch and returns its channel.
func (w *watcher) list(watchChildren, force bool) (<-chan zk.Event, error) {
	p := w.a.cfg.Path
	var (
		children []string
		ch       <-chan zk.Event
		err      error
	)
	if watchChildren {
		for range 3 {
			children, _, ch, err = w.conn.ChildrenW(p)
			if !errors.Is(err, zk.ErrNoNode) {
				break
			}
			// Not there yet: watch for its creation.
			var exists bool
			exists, _, ch, err = w.conn.ExistsW(p)
			children = nil
			if err != nil || !exists {
				break
			}
			// Created in between: list it.
		}
	} else {
		children, _, err = w.conn.Children(p)
		if errors.Is(err, zk.ErrNoNode) {
			children, err = nil, nil
		}
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(children)
	set := make([]plugin.Endpoint, 0, len(children))
	for _, c := range children {
		cp := path.Join(p, c)
		var data []byte
		if w.watched[c] {
			data, _, err = w.conn.Get(cp)
		} else {
			var dch <-chan zk.Event
			data, _, dch, err = w.conn.GetW(cp)
			if err == nil {
				w.watched[c] = true
				go func() {
					<-dch
					select {
					case w.fired <- c:
					case <-w.done:
					}
				}()
			}
		}
		if errors.Is(err, zk.ErrNoNode) {
			continue // gone since the listing; its removal fires the watch
		}
		if err != nil {
			return ch, err
		}
		var e entry
		if err := json.Unmarshal(data, &e); err != nil {
			w.skip(c, "skipping a zookeeper child whose data is not a backend entry", "err", err)
			continue
		}
		if e.Address == "" {
			e.Address = c
		}
		if _, _, err := net.SplitHostPort(e.Address); err != nil {
			w.skip(c, "skipping a zookeeper child with a bad address", "address", e.Address)
			continue
		}
		if e.Weight == 0 {
			e.Weight = 1
		}
		if e.Weight > 1_000_000 {
			w.skip(c, "skipping a zookeeper child with a weight above 1000000", "weight", e.Weight)
			continue
		}
		if slices.ContainsFunc(set, func(x plugin.Endpoint) bool { return x.Address == e.Address }) {
			w.skip(c, "skipping a zookeeper child with an address already registered", "address", e.Address)
			continue
		}
		delete(w.skipped, c)
		set = append(set, plugin.Endpoint{Address: e.Address, Weight: e.Weight, Zone: e.Zone, Meta: e.Meta})
	}
	// A child that went away leaves its watch fired; forget it.
	for c := range w.watched {
		if !slices.Contains(children, c) {
			delete(w.watched, c)
		}
	}
	for c := range w.skipped {
		if !slices.Contains(children, c) {
			delete(w.skipped, c)
		}
	}
	if force || !w.sent || !reflect.DeepEqual(set, w.last) {
		w.send(set, nil)
		w.last, w.sent = set, true
	}
	return ch, nil
}
