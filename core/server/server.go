// Package server assembles a running proxy from a configuration: the Wasm
// runtime and modules, the pools with their backends and health checks, the
// routers and the listeners; it serves until told to stop, reloads a new
// configuration without dropping a request, and drains gracefully.
//
// Build does everything that can fail before anything listens; Start binds
// every listener or none; Reload builds the next configuration beside the
// running one and swaps it in whole, or changes nothing; Shutdown stops
// accepting, lets in-flight requests finish up to a deadline, then closes
// what is left. A Server is safe for concurrent use.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/wproxy/wproxy/core/admin"
	"github.com/wproxy/wproxy/core/balancer"
	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/http1"
	"github.com/wproxy/wproxy/core/l4"
	"github.com/wproxy/wproxy/core/metrics"
	"github.com/wproxy/wproxy/core/proxy"
	"github.com/wproxy/wproxy/hostabi/wasmhost"
)

// Server is a running proxy.
type Server struct {
	logger  *slog.Logger
	rt      *wasmhost.Runtime
	gen     atomic.Pointer[generation]
	metrics *metrics.Metrics

	mu        sync.Mutex           // Start, Reload, Shutdown
	listeners map[string]*listener // by address
	admin     *listener
	started   bool
	serving   sync.WaitGroup // listeners and the janitor
	retiring  sync.WaitGroup // generations draining after a reload
	stop      chan struct{}  // closed by Close
	closed    sync.Once

	reloadsOK, reloadsRejected atomic.Uint64
	lastReloadFailed           atomic.Bool
}

type listener struct {
	name    string
	addr    string
	mode    string
	handler *proxy.Handler // http
	srv     *http1.Server  // http, plain
	tcp     *l4.Proxy      // tcp
	pool    atomic.Pointer[string]
	ln      net.Listener

	// tls or h2c (tls.go): net/http's server, and HTTP/3 beside it.
	hs       *http.Server
	hconns   atomic.Int64 // hs's connections, by its ConnState
	maxConns int
	h3       *http3.Server
	pc       net.PacketConn         // h3's UDP socket
	altSvc   atomic.Pointer[string] // the Alt-Svc header advertising h3
}

// listenerKey identifies a listener across reloads: its address, or, for
// a free port (:0), which several listeners may ask for, its address and
// name.
func listenerKey(l config.Listener) string {
	if strings.HasSuffix(l.Address, ":0") {
		return l.Address + "#" + l.Name
	}
	return l.Address
}

// conns returns the listener's client connections open now.
func (l *listener) conns() int {
	if l.tcp != nil {
		return l.tcp.Conns()
	}
	if l.hs != nil {
		return int(l.hconns.Load())
	}
	return l.srv.Conns()
}

// shutdown stops accepting and waits for the connections to end until ctx
// is done, then closes them.
func (l *listener) shutdown(ctx context.Context) error {
	if l.tcp != nil {
		return l.tcp.Shutdown(ctx)
	}
	if l.hs != nil {
		return l.shutdownNetHTTP(ctx)
	}
	err := l.srv.Shutdown(ctx)
	l.handler.CloseTunnels()
	return err
}

// Build compiles and initialises every module and creates every pool. Errors
// are config.Errors located at the field they concern. Nothing listens yet.
func Build(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{logger: logger, listeners: map[string]*listener{}, stop: make(chan struct{})}
	s.metrics = metrics.New(s.snapshot)
	cacheDir := cfg.Wasm.CacheDir
	if cacheDir == "off" {
		cacheDir = ""
	}
	rt, err := wasmhost.New(ctx, wasmhost.Config{
		CacheDir:         cacheDir,
		MemoryLimitPages: uint32(cfg.Wasm.MaxMemoryMB) * 16, // 16 pages of 64 KiB a MiB
		CallBudget:       cfg.Wasm.CallBudget,
		InitBudget:       cfg.Wasm.InitBudget,
		Logger:           logger,
	})
	if err != nil {
		return nil, config.Errors{cfg.ErrorAt(err, "wasm", "cache_dir")}
	}
	s.rt = rt
	g, err := s.buildGeneration(ctx, cfg, nil)
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	s.gen.Store(g)
	for i, l := range cfg.Listeners {
		nl, err := s.newListener(g, l)
		if err != nil {
			g.closeExcept(nil)
			rt.Close(ctx)
			return nil, config.Errors{cfg.ErrorAt(err, "listeners", i, "tls")}
		}
		s.listeners[listenerKey(l)] = nl
	}
	return s, nil
}

func (s *Server) newListener(g *generation, l config.Listener) (*listener, error) {
	if l.Mode == config.ModeTCP {
		nl := &listener{name: l.Name, addr: l.Address, mode: l.Mode}
		pool := l.Pool
		nl.pool.Store(&pool)
		nl.tcp = l4.New(func() *balancer.Pool {
			if ps := s.gen.Load().pools[*nl.pool.Load()]; ps != nil {
				return ps.pool
			}
			return nil
		}, l4.Config{
			ConnectTimeout: g.cfg.Timeouts.Connect, IdleTimeout: l.IdleTimeout, MaxConns: l.MaxConnections,
			Hash: l.Hash, Logger: s.logger.With("listener", l.Name),
		})
		return nl, nil
	}
	h := proxy.New(g.table(l, s.metrics), s.logger.With("listener", l.Name))
	if netHTTP(l) {
		return s.newNetHTTPListener(g, l, h)
	}
	srv := &http1.Server{Handler: h, Logger: s.logger.With("listener", l.Name)}
	srv.SetLimits(limits(g.cfg))
	return &listener{name: l.Name, addr: l.Address, mode: l.Mode, handler: h, srv: srv}, nil
}

// limits are what a listener enforces on its clients.
func limits(cfg *config.Config) http1.Limits {
	return http1.Limits{
		ReadHeaderTimeout:   cfg.Timeouts.ClientHeader,
		IdleTimeout:         cfg.Timeouts.ClientIdle,
		MaxHeaderBytes:      cfg.Limits.MaxHeaderBytes,
		MaxRequestLineBytes: cfg.Limits.MaxRequestLineBytes,
		MaxConns:            cfg.Limits.MaxConnections,
	}
}

// Config returns the configuration being served.
func (s *Server) Config() *config.Config { return s.gen.Load().cfg }

// Pool returns a pool of the current configuration by name, or nil.
func (s *Server) Pool(name string) *balancer.Pool {
	if ps := s.gen.Load().pools[name]; ps != nil {
		return ps.pool
	}
	return nil
}

// Pools returns the current configuration's pools by name.
func (s *Server) Pools() map[string]*balancer.Pool { return s.gen.Load().poolMap() }

// AdminAddr returns the admin listener's bound address, or "".
func (s *Server) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil || s.admin.ln == nil {
		return ""
	}
	return s.admin.ln.Addr().String()
}

// Start binds every listener, or none: when one cannot bind, those already
// bound are closed and the error names the listener and its address.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("server already started")
	}
	cfg := s.gen.Load().cfg
	var bound []*listener
	fail := func(err error) error {
		for _, l := range bound {
			l.closeSockets()
		}
		return err
	}
	for i, lc := range cfg.Listeners {
		l := s.listeners[listenerKey(lc)]
		if err := l.bind(); err != nil {
			return fail(cfg.ErrorAt(fmt.Errorf("cannot listen: %w", err), "listeners", i, "address"))
		}
		bound = append(bound, l)
	}
	if a := cfg.Admin.ListenAddress(); a != "" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fail(cfg.ErrorAt(fmt.Errorf("cannot listen: %w", err), "admin", "address"))
		}
		s.admin = &listener{name: "admin", addr: a, ln: ln, srv: &http1.Server{
			Handler: admin.Handler(s, s.logger), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
			Logger: s.logger.With("listener", "admin"),
		}}
		bound = append(bound, s.admin)
	}
	s.started = true
	s.serving.Add(1)
	go s.janitor()
	for _, ps := range s.gen.Load().pools {
		ps.onApply = s.discoveryApplied
		ps.start()
	}
	for _, l := range bound {
		s.serve(l)
	}
	return nil
}

func (s *Server) serve(l *listener) {
	if l.hs != nil {
		s.logger.Info("listening", "listener", l.name, "address", l.ln.Addr().String(), "tls", l.hs.TLSConfig != nil)
		s.serveNetHTTP(l)
		return
	}
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		var err error
		if l.tcp != nil {
			err = l.tcp.Serve(l.ln)
			if errors.Is(err, net.ErrClosed) {
				err = nil
			}
		} else {
			err = l.srv.Serve(l.ln)
		}
		if err != nil && !errors.Is(err, http1.ErrServerClosed) {
			s.logger.Error("listener stopped", "listener", l.name, "err", err)
		}
	}()
	s.logger.Info("listening", "listener", l.name, "address", l.ln.Addr().String())
}

// Addrs returns the bound address of each listener, in configuration order.
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.gen.Load().cfg
	addrs := make([]string, len(cfg.Listeners))
	for i, lc := range cfg.Listeners {
		if l := s.listeners[listenerKey(lc)]; l != nil && l.ln != nil {
			addrs[i] = l.ln.Addr().String()
		}
	}
	return addrs
}

// Reload makes cfg the configuration being served, or changes nothing. Every
// module of cfg is compiled and initialised, and new listeners are bound,
// before anything is swapped; requests in flight finish with the pools they
// started with; pools, backends (with their health and connections) and
// modules that did not change carry over. The Wasm runtime's settings and
// the admin listener cannot change without a restart. Errors are
// config.Errors when they concern a field.
func (s *Server) Reload(ctx context.Context, cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.reload(ctx, cfg)
	if err != nil {
		s.reloadsRejected.Add(1)
		s.lastReloadFailed.Store(true)
		s.logger.Error("reload rejected; the running configuration goes on", "err", err)
		return err
	}
	s.reloadsOK.Add(1)
	s.lastReloadFailed.Store(false)
	s.logger.Info("reloaded", "config", cfg.File)
	return nil
}

func (s *Server) reload(ctx context.Context, cfg *config.Config) error {
	old := s.gen.Load()
	if !reflect.DeepEqual(cfg.Wasm, old.cfg.Wasm) {
		return config.Errors{cfg.ErrorAt(errors.New("the wasm settings cannot change without a restart"), "wasm")}
	}
	if cfg.Admin.Address != old.cfg.Admin.Address {
		return config.Errors{cfg.ErrorAt(errors.New("the admin address cannot change without a restart"), "admin", "address")}
	}
	for i, lc := range cfg.Listeners {
		for _, was := range old.cfg.Listeners {
			if was.Address != lc.Address || strings.HasSuffix(lc.Address, ":0") {
				continue
			}
			if was.Mode != lc.Mode {
				return config.Errors{cfg.ErrorAt(fmt.Errorf("a listener's mode cannot change on reload (%s to %s); give it another address", was.Mode, lc.Mode), "listeners", i, "mode")}
			}
			if lc.Mode == config.ModeTCP && (was.Hash != lc.Hash || was.IdleTimeout != lc.IdleTimeout || was.MaxConnections != lc.MaxConnections) {
				return config.Errors{cfg.ErrorAt(errors.New("a tcp listener's hash, idle_timeout and max_connections cannot change on reload (its pool can); give it another address"), "listeners", i)}
			}
			if !sameProtocols(was, lc) {
				return config.Errors{cfg.ErrorAt(errors.New("a listener's tls, h2c and http3 cannot change on reload; give it another address"), "listeners", i)}
			}
		}
	}
	g, err := s.buildGeneration(ctx, cfg, old)
	if err != nil {
		return err
	}
	// Bind the listeners this configuration adds, before any swap.
	added := map[string]*listener{}
	for i, lc := range cfg.Listeners {
		if _, ok := s.listeners[listenerKey(lc)]; ok {
			continue
		}
		l, err := s.newListener(g, lc)
		if err != nil {
			for _, a := range added {
				a.closeSockets()
			}
			g.closeExcept(old)
			return config.Errors{cfg.ErrorAt(err, "listeners", i, "tls")}
		}
		if s.started {
			if err := l.bind(); err != nil {
				for _, a := range added {
					a.closeSockets()
				}
				g.closeExcept(old)
				return config.Errors{cfg.ErrorAt(fmt.Errorf("cannot listen: %w", err), "listeners", i, "address")}
			}
		}
		added[listenerKey(lc)] = l
	}

	// Swap.
	s.gen.Store(g)
	kept := map[string]bool{}
	for _, lc := range cfg.Listeners {
		kept[listenerKey(lc)] = true
		if l, ok := s.listeners[listenerKey(lc)]; ok {
			l.name = lc.Name
			if l.tcp != nil {
				pool := lc.Pool
				l.pool.Store(&pool)
				continue
			}
			l.handler.SetTable(g.table(lc, s.metrics))
			if l.srv != nil {
				l.srv.SetLimits(limits(cfg))
			}
		}
	}
	var removed []*listener
	for addr, l := range s.listeners {
		if !kept[addr] {
			removed = append(removed, l)
			delete(s.listeners, addr)
		}
	}
	for addr, l := range added {
		s.listeners[addr] = l
		if s.started {
			s.serve(l)
		}
	}
	if s.started {
		for name, ps := range g.pools {
			if old.pools[name] != ps {
				ps.onApply = s.discoveryApplied
				ps.start()
			}
		}
	}
	s.retainMetrics(g)
	s.retire(old, g, removed)
	return nil
}

// retire drains what the old generation does not share with the new one:
// removed listeners stop accepting and finish their requests; replaced pools
// are closed once their last request is done (at most the shutdown timeout
// later); backends that left close their connections.
func (s *Server) retire(old, g *generation, removed []*listener) {
	var gone []*poolState
	for name, ps := range old.pools {
		if g.pools[name] != ps {
			gone = append(gone, ps)
			if ps.prober != nil {
				ps.prober.Stop()
			}
		}
	}
	live := g.backendSet()
	var leaving []*balancer.Backend
	for b := range old.backendSet() {
		if !live[b] {
			leaving = append(leaving, b)
		}
	}
	deadline := g.cfg.Timeouts.Shutdown
	s.retiring.Add(1)
	go func() {
		defer s.retiring.Done()
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		var wg sync.WaitGroup
		for _, l := range removed {
			wg.Go(func() { l.shutdown(ctx) })
		}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for _, ps := range gone {
			for ps.pool.InFlight() > 0 && ctx.Err() == nil {
				select {
				case <-tick.C:
				case <-ctx.Done():
				}
			}
			ps.close()
		}
		wg.Wait()
		for _, b := range leaving {
			b.Conns.Close()
		}
	}()
}

// ReloadFile reads the configuration file being served again and reloads it.
func (s *Server) ReloadFile(ctx context.Context) error {
	file := s.gen.Load().cfg.File
	if file == "" || s.gen.Load().cfg.Dir == "" {
		return errors.New("no configuration file to reload")
	}
	cfg, err := config.Load(file)
	if err != nil {
		s.reloadsRejected.Add(1)
		s.lastReloadFailed.Store(true)
		s.logger.Error("reload rejected; the running configuration goes on", "err", err)
		return err
	}
	return s.Reload(ctx, cfg)
}

// ReloadStats returns how many reloads succeeded and how many were rejected.
func (s *Server) ReloadStats() (ok, rejected uint64) {
	return s.reloadsOK.Load(), s.reloadsRejected.Load()
}

// Shutdown stops accepting connections, waits for in-flight requests until
// ctx is done, then closes every connection and releases the modules. It
// returns ctx's error when requests had to be cut off.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	ls := make([]*listener, 0, len(s.listeners))
	for _, l := range s.listeners {
		ls = append(ls, l)
	}
	adm := s.admin
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(ls))
	for i, l := range ls {
		wg.Go(func() { errs[i] = l.shutdown(ctx) })
	}
	if adm != nil {
		adm.srv.Close()
	}
	wg.Wait()
	s.retiring.Wait()
	s.Close()
	s.serving.Wait()
	return errors.Join(errs...)
}

// discoveryApplied drops the metric series of backends discovery removed.
func (s *Server) discoveryApplied() { s.retainMetrics(s.gen.Load()) }

// Close releases the pools, the backends' connections and the Wasm runtime
// without draining; Shutdown calls it.
func (s *Server) Close() {
	s.closed.Do(func() {
		close(s.stop)
		g := s.gen.Load()
		for _, ps := range g.pools {
			ps.close()
		}
		for b := range g.backendSet() {
			b.Conns.Close()
		}
		s.rt.Close(context.Background())
	})
}

// janitor closes upstream connections that stayed idle past their pool's
// idle timeout, so that they do not hold descriptors (here or on the
// backend) until the next request happens to find them. It runs at a
// quarter of the shortest idle timeout, at most once a second.
func (s *Server) janitor() {
	defer s.serving.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		every := time.Second
		g := s.gen.Load()
		for _, ps := range g.pools {
			every = min(every, max(ps.cfg.IdleConnTimeout/4, 10*time.Millisecond))
		}
		t.Reset(every)
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			for b := range g.backendSet() {
				b.Conns.CloseIdle(now)
			}
		}
	}
}
