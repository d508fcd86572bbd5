package backendkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often a Sampler samples, and a Watchdog looks at
// the figures, unless configured otherwise.
const DefaultInterval = time.Second

// Figures is one reading of this process's load.
type Figures struct {
	// CPU is the CPU time used between the last two samples as a fraction
	// of the cores available to the process over that time, 0 to 1. It is 0
	// until the second sample.
	CPU float64
	// CPUCores is the same CPU time as a number of cores kept busy: 1.5
	// means one and a half cores. It may exceed 1; CPU does not.
	CPUCores float64
	// Memory is RSSBytes / LimitBytes: 0 to 1, or more when the process has
	// outgrown a limit set in SamplerConfig.MemoryLimit.
	Memory float64
	// RSSBytes is the process's resident set size.
	RSSBytes int64
	// LimitBytes is the memory the process may use: SamplerConfig's
	// MemoryLimit, or else what MemoryLimit detects.
	LimitBytes int64
	// InFlight is the number of requests begun and not yet ended (see
	// Sampler.Track), read when the Figures were returned.
	InFlight int64
	// At is when CPU and memory were sampled.
	At time.Time
}

// SamplerConfig configures a Sampler. The zero value is ready to use.
type SamplerConfig struct {
	// Interval is the time between two samples. Default: 1 s.
	Interval time.Duration
	// MemoryLimit is the memory the process may use, in bytes, the
	// denominator of Figures.Memory. Default: 0, detect it on every sample
	// with MemoryLimit (cgroup v2, cgroup v1, then the machine's RAM).
	MemoryLimit int64
	// Cores is the number of cores the process may use, the denominator of
	// Figures.CPU. Default: 0, runtime.GOMAXPROCS(0) at each sample, which
	// since Go 1.25 follows the cgroup's CPU quota and the CPU affinity.
	Cores float64
	// Adjust, if set, rewrites every reading Figures returns (including the
	// ones handlers and Watchdogs see). Tests use it to cross thresholds
	// deterministically; it may replace figures or add to them. It is called
	// from many goroutines at once and must be safe for concurrent use.
	Adjust func(Figures) Figures
	// Logger receives a warning when a sample fails (the previous figures
	// are kept). Default: slog.Default().
	Logger *slog.Logger
}

// Validate reports every problem of c at once, or nil.
func (c *SamplerConfig) Validate() error {
	var errs []error
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval: %v is negative", c.Interval))
	}
	if c.MemoryLimit < 0 {
		errs = append(errs, fmt.Errorf("memory limit: %d is negative", c.MemoryLimit))
	}
	if !(c.Cores >= 0) || math.IsInf(c.Cores, 1) {
		errs = append(errs, fmt.Errorf("cores: %v is not a finite number of at least 0", c.Cores))
	}
	return errors.Join(errs...)
}

// A Sampler measures this process's CPU use, memory and requests in flight.
// It samples CPU and memory on its own goroutine every Interval between
// Start and Stop, and counts requests as they begin and end.
//
// All methods of a Sampler are safe for concurrent use.
type Sampler struct {
	cfg      SamplerConfig
	inflight atomic.Int64
	snap     atomic.Pointer[Figures]

	mu      sync.Mutex // serializes samples; guards the fields below
	prevCPU time.Duration
	prevAt  time.Time

	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// NewSampler validates cfg and takes a first sample (memory only: CPU needs
// two), so that Figures is meaningful at once. It fails if the process's
// figures cannot be read (on a system without /proc, for one). The Sampler
// samples again only once started.
func NewSampler(cfg SamplerConfig) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sampler: %w", err)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Sampler{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.sample(); err != nil {
		return nil, fmt.Errorf("sampler: %w", err)
	}
	return s, nil
}

// Interval returns the time between two samples.
func (s *Sampler) Interval() time.Duration { return s.cfg.Interval }

// Start starts sampling every Interval on a goroutine of the Sampler's own,
// which Stop ends. Calls after the first do nothing.
func (s *Sampler) Start() {
	s.startOnce.Do(func() { go s.run() })
}

// Stop stops sampling and waits for the sampling goroutine to return. The
// Sampler still counts requests and answers Figures with its last sample.
// Calls after the first do nothing; Stop without Start is allowed.
func (s *Sampler) Stop() {
	s.stopOnce.Do(func() {
		close(s.stop)
		started := true
		s.startOnce.Do(func() { started = false }) // no Start from now on
		if started {
			<-s.done
		}
	})
}

func (s *Sampler) run() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.sample(); err != nil {
				s.cfg.Logger.Warn("backendkit: sample failed; keeping the previous figures", "err", err)
			}
		}
	}
}

// sample reads the process's CPU time and memory and publishes a new
// snapshot.
func (s *Sampler) sample() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	used, err := cpuTime()
	if err != nil {
		return err
	}
	res, err := rss()
	if err != nil {
		return err
	}
	limit := s.cfg.MemoryLimit
	if limit == 0 {
		if limit, _, err = MemoryLimit(); err != nil {
			return err
		}
	}
	f := Figures{RSSBytes: res, LimitBytes: limit, At: now}
	f.Memory = float64(res) / float64(limit)
	if !s.prevAt.IsZero() {
		if wall := now.Sub(s.prevAt); wall > 0 {
			f.CPUCores = max(0, float64(used-s.prevCPU)/float64(wall))
			cores := s.cfg.Cores
			if cores == 0 {
				cores = float64(runtime.GOMAXPROCS(0))
			}
			f.CPU = min(1, f.CPUCores/cores)
		}
	}
	s.prevCPU, s.prevAt = used, now
	s.snap.Store(&f)
	return nil
}

// Figures returns the latest sample of CPU and memory with the requests in
// flight now, rewritten by SamplerConfig.Adjust if set.
func (s *Sampler) Figures() Figures { return s.read(0) }

// read is Figures with exclude requests taken off the count in flight: the
// handlers do not count the request asking for the figures.
func (s *Sampler) read(exclude int64) Figures {
	f := *s.snap.Load()
	f.InFlight = max(0, s.inflight.Load()-exclude)
	if s.cfg.Adjust != nil {
		f = s.cfg.Adjust(f)
	}
	return f
}

// Begin counts one more request in flight. Every Begin must be matched by
// one End.
func (s *Sampler) Begin() { s.inflight.Add(1) }

// End counts one request in flight less.
func (s *Sampler) End() { s.inflight.Add(-1) }

// trackedKey marks, in a request's context, the Sampler whose Track counts
// the request.
type trackedKey struct{}

// Track returns a handler that counts each request in flight from the time
// it reaches h until h returns, and then serves it with h. The health and
// load handlers of the same Sampler leave the request asking for the
// figures out of the count. The returned handler is safe for concurrent use
// if h is.
func (s *Sampler) Track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Begin()
		defer s.End()
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), trackedKey{}, s)))
	})
}

// selfCount is 1 if r is counted in flight by s's Track, else 0.
func (s *Sampler) selfCount(r *http.Request) int64 {
	if t, _ := r.Context().Value(trackedKey{}).(*Sampler); t == s {
		return 1
	}
	return 0
}
