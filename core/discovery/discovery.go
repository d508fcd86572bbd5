// Package discovery keeps a pool's backends in step with its discovery
// sources: files it watches and Wasm adapters (such as the default etcd
// module) it polls. A Manager merges the pool's static backends with every
// source's last good set and hands the merged set on when it changes. A
// source that fails keeps its last good set, says so once, and is retried
// with a back-off; nothing a source does stops the others or the pool.
package discovery

import (
	"context"

	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/hostabi/discoveryhost"
)

// Looker is one source: Look returns its current set, whether it changed
// since the last call, or an error when it could not look.
type Looker interface {
	Look(ctx context.Context) (set []config.Backend, changed bool, err error)
	Close()
}

// Source is a Looker with how it is run.
type Source struct {
	Name, Kind string
	Interval   time.Duration
	Looker     Looker
}

// Status is what a source last did, for the admin API and metrics.
type Status struct {
	Source    string    `json:"source"`
	Kind      string    `json:"kind"`
	OK        bool      `json:"ok"`
	Backends  int       `json:"backends"`
	Updates   uint64    `json:"updates"`
	Errors    uint64    `json:"errors"`
	LastError string    `json:"last_error,omitempty"`
	LastOK    time.Time `json:"last_ok,omitzero"`
}

// Manager runs a pool's sources.
type Manager struct {
	pool    string
	static  []config.Backend
	sources []*running
	logger  *slog.Logger

	mu      sync.Mutex
	apply   func([]config.Backend)
	applied []config.Backend
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

type running struct {
	Source
	mu      sync.Mutex
	set     []config.Backend
	status  Status
	failing bool
	lastLog time.Time
}

// NewManager returns a manager of sources for pool, whose configured
// backends are static.
func NewManager(pool string, static []config.Backend, sources []Source, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.Default()
	}
	m := &Manager{pool: pool, static: static, logger: logger.With("pool", pool)}
	for _, s := range sources {
		m.sources = append(m.sources, &running{Source: s, status: Status{Source: s.Name, Kind: s.Kind}})
	}
	return m
}

// Initial looks at every source once, in parallel, and returns the merged
// set: what a pool starts with. A source that fails starts empty and is
// retried by Start.
func (m *Manager) Initial(ctx context.Context) []config.Backend {
	var wg sync.WaitGroup
	for _, r := range m.sources {
		wg.Go(func() { m.look(ctx, r) })
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applied = m.mergeLocked()
	return m.applied
}

// Start polls every source at its interval until Stop, calling apply (one
// call at a time) with the merged set whenever it changes.
func (m *Manager) Start(apply func([]config.Backend)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return
	}
	m.started, m.apply = true, apply
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	for _, r := range m.sources {
		m.wg.Go(func() { m.loop(ctx, r) })
	}
}

// Stop ends the polls, waits for them and closes the sources.
func (m *Manager) Stop() {
	m.mu.Lock()
	cancel := m.cancel
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	m.wg.Wait()
	for _, r := range m.sources {
		r.Looker.Close()
	}
}

// Statuses returns every source's status.
func (m *Manager) Statuses() []Status {
	out := make([]Status, len(m.sources))
	for i, r := range m.sources {
		r.mu.Lock()
		out[i] = r.status
		r.mu.Unlock()
	}
	return out
}

func (m *Manager) loop(ctx context.Context, r *running) {
	wait := r.Interval
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if ok := m.look(ctx, r); ok {
			wait = r.Interval
		} else {
			wait = min(2*wait, max(config.MaxDiscoveryBackoff, r.Interval))
		}
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		merged := m.mergeLocked()
		if !reflect.DeepEqual(merged, m.applied) {
			m.logChange(merged)
			m.applied = merged
			if m.apply != nil {
				m.apply(merged)
			}
		}
		m.mu.Unlock()
	}
}

// look asks a source once and records the outcome.
func (m *Manager) look(ctx context.Context, r *running) bool {
	set, changed, err := r.Looker.Look(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if err != nil {
		r.status.Errors++
		r.status.OK = false
		r.status.LastError = err.Error()
		if !r.failing || now.Sub(r.lastLog) > time.Minute {
			m.logger.Error("discovery source failed; the pool keeps its last known backends from it, retrying with a back-off",
				"source", r.Name, "backends_kept", len(r.set), "err", err)
			r.lastLog = now
		}
		r.failing = true
		return false
	}
	if r.failing {
		m.logger.Info("discovery source answers again", "source", r.Name, "after_errors", r.status.Errors)
		r.failing = false
	}
	r.status.OK, r.status.LastOK, r.status.LastError = true, now, ""
	if changed {
		r.set = set
		r.status.Updates++
		r.status.Backends = len(set)
	}
	return true
}

// mergeLocked merges the static backends and every source's set: the first
// to name an address wins.
func (m *Manager) mergeLocked() []config.Backend {
	seen := map[string]bool{}
	out := make([]config.Backend, 0, len(m.static))
	add := func(bs []config.Backend) {
		for _, b := range bs {
			if !seen[b.Address] {
				seen[b.Address] = true
				out = append(out, b)
			}
		}
	}
	add(m.static)
	for _, r := range m.sources {
		r.mu.Lock()
		add(r.set)
		r.mu.Unlock()
	}
	return out
}

func (m *Manager) logChange(merged []config.Backend) {
	was := map[string]bool{}
	for _, b := range m.applied {
		was[b.Address] = true
	}
	var added, removed []string
	for _, b := range merged {
		if !was[b.Address] {
			added = append(added, b.Address)
		}
		delete(was, b.Address)
	}
	removed = slices.Sorted(maps.Keys(was))
	m.logger.Info("discovery changed the pool's backends", "backends", len(merged), "added", added, "removed", removed)
}

// FileLooker watches a file of backends (config.ParseBackendsFile).
type FileLooker struct {
	Path  string
	stamp string
	last  []config.Backend
	err   error // of the file as it is, until it changes
}

// Look reads the file when its size or modification time changed.
func (f *FileLooker) Look(context.Context) ([]config.Backend, bool, error) {
	st, err := os.Stat(f.Path)
	if err != nil {
		return nil, false, err
	}
	stamp := fmt.Sprint(st.Size(), st.ModTime().UnixNano())
	if stamp == f.stamp {
		return f.last, false, f.err
	}
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, false, err
	}
	set, err := config.ParseBackendsFile(data, f.Path)
	if err != nil {
		// Not read again until it changes; the error stands until then.
		f.stamp, f.err = stamp, err
		return nil, false, err
	}
	f.stamp, f.err = stamp, nil
	changed := !reflect.DeepEqual(set, f.last)
	f.last = set
	return set, changed, nil
}

// Close does nothing.
func (f *FileLooker) Close() {}

// AdapterLooker polls a Wasm discovery adapter.
type AdapterLooker struct {
	Adapter *discoveryhost.Adapter
	last    []config.Backend
}

// Look polls the adapter once.
func (a *AdapterLooker) Look(ctx context.Context) ([]config.Backend, bool, error) {
	eps, changed, err := a.Adapter.Poll(ctx)
	if err != nil {
		return nil, false, err
	}
	if !changed {
		return a.last, false, nil
	}
	set := make([]config.Backend, len(eps))
	for i, e := range eps {
		set[i] = config.Backend{Address: e.Address, Weight: e.Weight, Zone: e.Zone, Meta: e.Meta}
		if len(e.Meta) == 0 {
			set[i].Meta = nil
		}
	}
	slices.SortFunc(set, func(x, y config.Backend) int { return strings.Compare(x.Address, y.Address) })
	changed = !reflect.DeepEqual(set, a.last)
	a.last = set
	return set, changed, nil
}

// Close closes the adapter.
func (a *AdapterLooker) Close() { a.Adapter.Close() }
