// Package server assembles a running proxy from a configuration: the Wasm
// runtime and modules, the pools with their backends, the routers and the
// listeners; it serves until told to stop and then drains gracefully.
//
// Build does everything that can fail before anything listens; Start binds
// every listener or none; Shutdown stops accepting, lets in-flight requests
// finish up to a deadline, then closes what is left.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/wproxy/wproxy/core/admin"
	"github.com/wproxy/wproxy/core/balancer"
	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/health"
	"github.com/wproxy/wproxy/core/http1"
	"github.com/wproxy/wproxy/core/proxy"
	"github.com/wproxy/wproxy/core/upstream"
	"github.com/wproxy/wproxy/hostabi/healthhost"
	"github.com/wproxy/wproxy/hostabi/lbhost"
	"github.com/wproxy/wproxy/hostabi/wasmhost"
)

// Server is a proxy built from one configuration.
type Server struct {
	cfg       *config.Config
	logger    *slog.Logger
	rt        *wasmhost.Runtime
	pools     map[string]*balancer.Pool
	probers   []*health.Prober
	evals     []*healthhost.Evaluator
	listeners []*listener

	admin *listener

	mu      sync.Mutex
	started bool
	serving sync.WaitGroup
	stop    chan struct{} // closed by Close: stops the janitor
	closed  sync.Once
}

type listener struct {
	name    string
	addr    string
	handler *proxy.Handler
	srv     *http1.Server
	ln      net.Listener
}

// Build compiles and initialises every module and creates every pool. Errors
// are config.Errors located at the field they concern. Nothing listens yet.
func Build(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{cfg: cfg, logger: logger, pools: map[string]*balancer.Pool{}, stop: make(chan struct{})}
	cacheDir := cfg.Wasm.CacheDir
	if cacheDir == "off" {
		cacheDir = ""
	}
	rt, err := wasmhost.New(ctx, wasmhost.Config{
		CacheDir:         cacheDir,
		MemoryLimitPages: uint32(cfg.Wasm.MaxMemoryMB) * 16, // 16 pages of 64 KiB a MiB
		Logger:           logger,
	})
	if err != nil {
		return nil, config.Errors{cfg.ErrorAt(err, "wasm", "cache_dir")}
	}
	s.rt = rt
	var errs config.Errors
	for _, name := range cfg.PoolNames() {
		pool, err := s.buildPool(ctx, name, cfg.Pools[name])
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) {
				ce = cfg.ErrorAt(err, "pools", name, "policy")
			}
			errs = append(errs, ce)
			continue
		}
		s.pools[name] = pool
	}
	if len(errs) > 0 {
		s.Close()
		return nil, errs
	}
	for _, l := range cfg.Listeners {
		routes := make([]proxy.Route, len(l.Routes))
		for i, r := range l.Routes {
			routes[i] = proxy.Route{Host: r.Host, PathPrefix: r.PathPrefix, Pool: s.pools[r.Pool]}
		}
		h := proxy.New(proxy.NewRouter(routes), proxy.Timeouts{
			ResponseHeader: cfg.Timeouts.ResponseHeader,
			ClientBody:     cfg.Timeouts.ClientBody,
		}, logger.With("listener", l.Name))
		s.listeners = append(s.listeners, &listener{name: l.Name, addr: l.Address, handler: h, srv: &http1.Server{
			Handler:           h,
			ReadHeaderTimeout: cfg.Timeouts.ClientHeader,
			IdleTimeout:       cfg.Timeouts.ClientIdle,
			Logger:            logger.With("listener", l.Name),
		}})
	}
	return s, nil
}

func (s *Server) buildPool(ctx context.Context, name string, pc *config.Pool) (*balancer.Pool, error) {
	wasm, err := s.cfg.ReadModule(name)
	if err != nil {
		return nil, err
	}
	source := pc.Policy
	if path := s.cfg.ModulePath(pc); path != "" {
		source = path
	}
	mod, err := lbhost.Load(ctx, s.rt, source, wasm)
	if err != nil {
		return nil, err
	}
	backends := make([]*balancer.Backend, len(pc.Backends))
	for i, b := range pc.Backends {
		backends[i] = &balancer.Backend{
			Address: b.Address, Weight: b.Weight, Zone: b.Zone, Meta: b.Meta,
			Conns: upstream.NewConnPool(b.Address, upstream.PoolConfig{
				MaxIdle:        pc.MaxIdleConns,
				IdleTimeout:    pc.IdleConnTimeout,
				ConnectTimeout: s.cfg.Timeouts.Connect,
			}),
		}
	}
	h := pc.Health
	rules := health.Rules{
		Rise: 1, Fall: 1,
		BaseEjection: h.Passive.BaseEjection, MaxEjection: h.Passive.MaxEjection,
	}
	if !h.Passive.Disable {
		rules.ConsecutiveFailures = h.Passive.ConsecutiveFailures
	}
	if h.Active != nil {
		rules.Rise, rules.Fall = h.Active.Rise, h.Active.Fall
	}
	pool, err := balancer.NewPool(name, mod, pc.PolicyConfigJSON(), backends, balancer.Options{
		HashKey: pc.HashSources(), FetchAllow: pc.FetchAllow, Logger: s.logger,
		Health: balancer.HealthOptions{
			Rules:           rules,
			PanicThreshold:  float64(h.PanicThreshold) / 100,
			DegradedWeight:  float64(h.DegradedWeight) / 100,
			MaxEjectedShare: float64(h.Passive.MaxEjectedPercent) / 100,
			Ignore5xx:       h.Passive.Ignore5xx,
		},
	})
	if err != nil {
		at := "policy"
		if pc.PolicyConfig != nil {
			at = "policy_config"
		}
		return nil, s.cfg.ErrorAt(err, "pools", name, at)
	}
	if a := h.Active; a != nil {
		eval, err := s.buildEvaluator(ctx, name, a)
		if err != nil {
			pool.Close()
			return nil, err
		}
		s.evals = append(s.evals, eval)
		s.probers = append(s.probers, health.NewProber(name, health.ProbeConfig{
			Path: a.Path, Interval: a.Interval, Jitter: float64(a.Jitter) / 100, Timeout: a.Timeout,
			Expected: a.ExpectedStatuses, Headers: a.Headers, BodyBytes: a.BodyBytes,
			Rules: rules, Evaluator: eval,
		}, func() []health.Target {
			ms := pool.Members()
			ts := make([]health.Target, len(ms))
			for i, m := range ms {
				ts[i] = m
			}
			return ts
		}, pool.Refresh, s.logger))
	}
	return pool, nil
}

func (s *Server) buildEvaluator(ctx context.Context, pool string, a *config.ActiveHealth) (*healthhost.Evaluator, error) {
	wasm, source, err := s.cfg.ReadEvaluator(pool)
	if err != nil {
		return nil, err
	}
	mod, err := healthhost.Load(ctx, s.rt, source, wasm)
	if err != nil {
		return nil, s.cfg.ErrorAt(err, "pools", pool, "health", "active", "evaluator")
	}
	eval, err := healthhost.New(mod, a.EvaluatorConfigJSON(), s.logger.With("pool", pool))
	if err != nil {
		at := "evaluator"
		if a.EvaluatorConfig != nil {
			at = "evaluator_config"
		}
		return nil, s.cfg.ErrorAt(err, "pools", pool, "health", "active", at)
	}
	return eval, nil
}

// Pool returns a pool by name, or nil.
func (s *Server) Pool(name string) *balancer.Pool { return s.pools[name] }

// Pools returns the pools by name; the map must not be modified.
func (s *Server) Pools() map[string]*balancer.Pool { return s.pools }

// AdminAddr returns the admin listener's bound address, or "".
func (s *Server) AdminAddr() string {
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
	for i, l := range s.listeners {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, prev := range s.listeners[:i] {
				prev.ln.Close()
				prev.ln = nil
			}
			return s.cfg.ErrorAt(fmt.Errorf("cannot listen: %w", err), "listeners", i, "address")
		}
		l.ln = ln
	}
	if a := s.cfg.Admin.Address; a != "" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range s.listeners {
				l.ln.Close()
				l.ln = nil
			}
			return s.cfg.ErrorAt(fmt.Errorf("cannot listen: %w", err), "admin", "address")
		}
		s.admin = &listener{name: "admin", addr: a, ln: ln, srv: &http1.Server{
			Handler: admin.Handler(s, s.logger), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, Logger: s.logger.With("listener", "admin"),
		}}
	}
	s.started = true
	s.serving.Add(1)
	go s.janitor()
	for _, p := range s.probers {
		p.Start()
	}
	all := s.listeners
	if s.admin != nil {
		all = append(append([]*listener{}, all...), s.admin)
	}
	for _, l := range all {
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http1.ErrServerClosed) {
				s.logger.Error("listener stopped", "listener", l.name, "err", err)
			}
		}()
		s.logger.Info("listening", "listener", l.name, "address", l.ln.Addr().String())
	}
	return nil
}

// Addrs returns the bound address of each listener, in configuration order.
func (s *Server) Addrs() []string {
	addrs := make([]string, len(s.listeners))
	for i, l := range s.listeners {
		if l.ln != nil {
			addrs[i] = l.ln.Addr().String()
		}
	}
	return addrs
}

// Shutdown stops accepting connections, waits for in-flight requests until
// ctx is done, then closes every connection and releases the modules. It
// returns ctx's error when requests had to be cut off.
func (s *Server) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.listeners))
	for i, l := range s.listeners {
		wg.Go(func() {
			errs[i] = l.srv.Shutdown(ctx)
			l.handler.CloseTunnels()
		})
	}
	if s.admin != nil {
		s.admin.srv.Close()
	}
	wg.Wait()
	s.Close()
	s.serving.Wait()
	return errors.Join(errs...)
}

// Close releases the pools and the Wasm runtime without draining; Shutdown
// calls it.
func (s *Server) Close() {
	s.closed.Do(func() {
		close(s.stop)
		for _, p := range s.probers {
			p.Stop()
		}
		for _, e := range s.evals {
			e.Close()
		}
		for _, p := range s.pools {
			p.Close()
		}
		if s.rt != nil {
			s.rt.Close(context.Background())
		}
	})
}

// janitor closes upstream connections that stayed idle past their pool's
// idle timeout, so that they do not hold descriptors (here or on the
// backend) until the next request happens to find them. It runs at a
// quarter of the shortest idle timeout, at most once a second.
func (s *Server) janitor() {
	defer s.serving.Done()
	every := time.Second
	for _, p := range s.cfg.Pools {
		every = min(every, max(p.IdleConnTimeout/4, 10*time.Millisecond))
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			for _, p := range s.pools {
				for _, b := range p.Backends() {
					b.Conns.CloseIdle(now)
				}
			}
		}
	}
}

// Run starts the server and serves until ctx is done, then shuts down with
// the configured drain deadline.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		s.Close()
		return err
	}
	<-ctx.Done()
	s.logger.Info("shutting down", "drain_deadline", s.cfg.Timeouts.Shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeouts.Shutdown)
	defer cancel()
	start := time.Now()
	err := s.Shutdown(sctx)
	if err != nil {
		s.logger.Warn("drain deadline passed; remaining connections closed", "after", time.Since(start).Round(time.Millisecond))
	} else {
		s.logger.Info("drained", "after", time.Since(start).Round(time.Millisecond))
	}
	return err
}
