// Command backend is an example backend for wproxy built on backendkit: it
// answers every path with its name, serves the kit's health and load
// endpoints, can be slowed down and made to hog memory, and can run the
// kit's watchdog on its memory. See README.md for the flags and routes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wproxy/wproxy/backendkit"
	"github.com/wproxy/wproxy/backendkit/etcdreg"
)

// shutdownTimeout bounds the graceful shutdown on SIGTERM.
const shutdownTimeout = 30 * time.Second

// Limits of the test routes, to keep a typo from taking the machine down.
const (
	maxHogMB  = 16 << 10
	maxSlowMS = 10 * 60 * 1000
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	os.Exit(code)
}

// options are the command's flags.
type options struct {
	listen      string
	name        string
	delay       time.Duration
	maxMemMB    int64
	watchdogMem float64
	watchdogFor time.Duration
	reexec      bool
	interval    time.Duration
	maxInFlight int64
	etcd        string
	etcdPrefix  string
	etcdTTL     time.Duration
	weight      uint
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9001", "`address` to listen on")
	fs.StringVar(&o.name, "name", host, "`name` in answers and the X-Backend header")
	fs.DurationVar(&o.delay, "delay", 0, "artificial service `time` of every request but /health and /load")
	fs.Int64Var(&o.maxMemMB, "max-mem-mb", 0, "memory limit in `MiB` for the health, load and watchdog figures; 0 detects it (cgroup, else RAM)")
	fs.Float64Var(&o.watchdogMem, "watchdog-mem", 0, "restart when memory stays above this `fraction` of the limit; 0 is off")
	fs.DurationVar(&o.watchdogFor, "watchdog-for", 10*time.Second, "how long memory must stay above -watchdog-mem")
	fs.BoolVar(&o.reexec, "reexec", false, "when the watchdog trips, re-execute in place rather than exit with status 75")
	fs.DurationVar(&o.interval, "interval", time.Second, "sampling interval of the figures and the watchdog")
	fs.Int64Var(&o.maxInFlight, "max-inflight", 0, "`requests` in flight that count as fully loaded, and above which /health fails; 0 is no limit")
	fs.StringVar(&o.etcd, "etcd", "", "register in etcd at these comma-separated client `URLs` while serving (see README: Self-registration in etcd)")
	fs.StringVar(&o.etcdPrefix, "etcd-prefix", "/wproxy/services/demo", "the key `prefix` to register under")
	fs.DurationVar(&o.etcdTTL, "etcd-ttl", 10*time.Second, "the registration's lease `TTL`")
	fs.UintVar(&o.weight, "weight", 1, "the `weight` registered")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var errs []error
	if o.delay < 0 {
		errs = append(errs, fmt.Errorf("-delay: %v is negative", o.delay))
	}
	if o.maxMemMB < 0 {
		errs = append(errs, fmt.Errorf("-max-mem-mb: %d is negative", o.maxMemMB))
	}
	if !(o.watchdogMem >= 0) {
		errs = append(errs, fmt.Errorf("-watchdog-mem: %v is not a fraction of at least 0", o.watchdogMem))
	}
	if o.watchdogFor < 0 {
		errs = append(errs, fmt.Errorf("-watchdog-for: %v is negative", o.watchdogFor))
	}
	if o.interval <= 0 {
		errs = append(errs, fmt.Errorf("-interval: %v is not positive", o.interval))
	}
	if o.maxInFlight < 0 {
		errs = append(errs, fmt.Errorf("-max-inflight: %d is negative", o.maxInFlight))
	}
	return o, errors.Join(errs...)
}

// run runs the backend until ctx ends (graceful shutdown, status 0) or its
// watchdog trips (status 75), and returns the exit status: 2 for bad flags,
// 1 for other failures. It logs to stderr and calls ready, if set, with the
// address it listens on.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr)) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "backend: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	sampler, err := backendkit.NewSampler(backendkit.SamplerConfig{
		Interval:    opts.interval,
		MemoryLimit: opts.maxMemMB << 20,
		Logger:      logger,
	})
	if err != nil {
		logger.Error("backend: " + err.Error())
		return 1
	}
	sampler.Start()
	defer sampler.Stop()

	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		logger.Error("backend: " + err.Error())
		return 1
	}
	b := &backend{name: opts.name, delay: opts.delay}
	srv := &http.Server{
		Handler:           b.routes(sampler, opts.maxInFlight),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	exitc := make(chan int, 1)
	if opts.watchdogMem > 0 {
		wd := &backendkit.Watchdog{
			Sampler: sampler,
			Rules:   []backendkit.Rule{{Metric: backendkit.MetricMemory, Threshold: opts.watchdogMem, For: opts.watchdogFor}},
			Drain:   srv.Shutdown,
			ReExec:  opts.reexec,
			Logger:  logger,
			// The exit goes through run's return, after its deferred
			// clean-up; a re-exec does not come back.
			Exit: func(code int) { exitc <- code },
		}
		if err := wd.Start(); err != nil {
			ln.Close()
			logger.Error("backend: " + err.Error())
			return 1
		}
		defer wd.Stop()
	}

	limitSource := "flag"
	if opts.maxMemMB == 0 {
		_, limitSource, _ = backendkit.MemoryLimit()
	}
	f := sampler.Figures()
	logger.Info("listening", "addr", ln.Addr().String(), "name", opts.name, "pid", os.Getpid(),
		"rss_mib", f.RSSBytes>>20, "limit_mib", f.LimitBytes>>20, "limit_source", limitSource,
		"watchdog_mem", opts.watchdogMem, "watchdog_for", opts.watchdogFor, "reexec", opts.reexec)
	deregister := func() {}
	if opts.etcd != "" {
		reg, err := etcdreg.Register(ctx, etcdreg.Config{
			Endpoints: strings.Split(opts.etcd, ","), Prefix: opts.etcdPrefix, Address: ln.Addr().String(),
			TTL: opts.etcdTTL, Weight: uint32(opts.weight), Meta: map[string]string{"name": opts.name}, Logger: logger,
		})
		if err != nil {
			ln.Close()
			logger.Error("backend: register in etcd: " + err.Error())
			return 1
		}
		var once sync.Once
		deregister = func() {
			once.Do(func() {
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				reg.Close(cctx)
				cancel()
			})
		}
		defer deregister()
		logger.Info("registered in etcd", "key", reg.Key(), "ttl", opts.etcdTTL)
	}
	if ready != nil {
		ready(ln.Addr())
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		// Deregistered first: the proxy stops sending before the server
		// stops answering.
		deregister()
		logger.Info("shutting down", "timeout", shutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		err := srv.Shutdown(sctx)
		cancel()
		<-served
		if err != nil {
			logger.Error("shutdown: " + err.Error())
			return 1
		}
		logger.Info("stopped")
		return 0
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error("serve: " + err.Error())
			return 1
		}
		// Only the watchdog's drain closes the server besides the case
		// above: wait for its verdict.
		return <-exitc
	}
}

// backend serves the example's routes.
type backend struct {
	name  string
	delay time.Duration

	mu  sync.Mutex
	hog [][]byte // memory held by /hog
}

// routes returns the backend's handler: every route counted in flight by
// sampler, and all but /health and /load delayed by b.delay.
func (b *backend) routes(sampler *backendkit.Sampler, maxInFlight int64) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/health", sampler.HealthHandler(backendkit.HealthConfig{MaxInFlight: maxInFlight}))
	mux.Handle("/load", sampler.LoadHandler(backendkit.LoadConfig{MaxInFlight: maxInFlight}))
	mux.Handle("/slow", b.delayed(b.slow))
	mux.Handle("/hog", b.delayed(b.hogMemory))
	mux.Handle("/", b.delayed(b.serve))
	return sampler.Track(mux)
}

// delayed waits b.delay, or until the client goes, before calling h.
func (b *backend) delayed(h http.HandlerFunc) http.Handler {
	if b.delay == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait(r.Context(), b.delay) {
			h(w, r)
		}
	})
}

// serve answers "NAME served METHOD URI".
func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend", b.name)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%s served %s %s\n", b.name, r.Method, r.RequestURI)
}

// slow waits ms milliseconds, then answers as serve does.
func (b *backend) slow(w http.ResponseWriter, r *http.Request) {
	ms, err := intParam(r, "ms", maxSlowMS)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if wait(r.Context(), time.Duration(ms)*time.Millisecond) {
		b.serve(w, r)
	}
}

// hogMemory allocates mb MiB, writes to every page so that it is resident,
// and keeps it until the process ends.
func (b *backend) hogMemory(w http.ResponseWriter, r *http.Request) {
	mb, err := intParam(r, "mb", maxHogMB)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	buf := make([]byte, mb<<20)
	for i, page := 0, os.Getpagesize(); i < len(buf); i += page {
		buf[i] = 1
	}
	b.mu.Lock()
	b.hog = append(b.hog, buf)
	total := 0
	for _, h := range b.hog {
		total += len(h)
	}
	b.mu.Unlock()
	w.Header().Set("X-Backend", b.name)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%s holds %d MiB more, %d MiB in all\n", b.name, mb, total>>20)
}

// intParam reads the query parameter name as an integer from 0 to limit.
func intParam(r *http.Request, name string, limit int) (int, error) {
	s := r.URL.Query().Get(name)
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > limit {
		return 0, fmt.Errorf("%s: want an integer from 0 to %d, got %q", name, limit, s)
	}
	return n, nil
}

// wait waits d and reports true, or false if ctx ends first.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
