package backendkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"syscall"
	"time"
)

// ExitDegraded is the exit status of a process that a Watchdog ends:
// EX_TEMPFAIL of sysexits.h, a temporary failure, so that a supervisor
// restarts it (systemd with Restart=on-failure, a container runtime with a
// restart policy, Kubernetes).
const ExitDegraded = 75

// DefaultDrainTimeout is how long a Watchdog lets Drain take unless
// configured otherwise.
const DefaultDrainTimeout = 30 * time.Second

// Metric names a figure a Rule watches.
type Metric string

// The metrics of Figures a Rule can watch.
const (
	MetricCPU      Metric = "cpu"      // Figures.CPU, 0 to 1
	MetricMemory   Metric = "mem"      // Figures.Memory, 0 to 1 of the limit
	MetricInFlight Metric = "inflight" // Figures.InFlight
	MetricRSS      Metric = "rss"      // Figures.RSSBytes, in bytes
)

// A Rule trips when its metric stays above Threshold for For.
type Rule struct {
	// Metric is the figure watched, or with Value the name of a metric of
	// the caller's own, for the logs.
	Metric Metric
	// Value, if set, is called for the metric instead of reading a figure
	// of the Watchdog's Sampler, on the Watchdog's goroutine.
	Value func() float64
	// Threshold is the highest value that is fine. Values strictly above
	// it are past the threshold.
	Threshold float64
	// For is how long the metric must be past the threshold, in every
	// sample, before the rule trips: the time from the first sample of the
	// run past it to the current one, give or take half the Watchdog's
	// Interval for the ticks' jitter. Default: 0, trip at the first sample
	// past it.
	For time.Duration
}

// String describes r as "mem > 0.9 for 10s".
func (r Rule) String() string {
	return fmt.Sprintf("%s > %s for %v", r.Metric, formatFloat(r.Threshold), r.For)
}

// value reads r's metric: Value, or else the figure of f it names.
func (r *Rule) value(f Figures) float64 {
	if r.Value != nil {
		return r.Value()
	}
	switch r.Metric {
	case MetricCPU:
		return f.CPU
	case MetricMemory:
		return f.Memory
	case MetricInFlight:
		return float64(f.InFlight)
	case MetricRSS:
		return float64(f.RSSBytes)
	}
	return math.NaN() // refused by Start
}

// Trip describes a rule that tripped.
type Trip struct {
	// Rule is the rule that tripped.
	Rule Rule
	// Value is the metric's value in the sample that tripped the rule.
	Value float64
	// Since is the time of the first sample of the run past the threshold.
	Since time.Time
	// At is the time of the sample that tripped the rule.
	At time.Time
}

// A Watchdog watches Rules over a process's figures and, when one trips,
// restarts the process gracefully: it calls Drain (http.Server.Shutdown,
// typically, which stops accepting connections and waits for requests in
// flight) with a deadline of DrainTimeout, logs, and exits with status
// ExitDegraded, or re-executes the program if ReExec is set. OnTrip replaces
// that action.
//
// Set the fields, then call Start; the fields must not change afterwards.
// Start and Stop are safe for concurrent use. The figures are read every
// Interval on a goroutine of the Watchdog's own, which Stop ends. As the
// Sampler's figures are up to one of its intervals old, a rule trips
// between For and about For plus two intervals after its metric crossed.
type Watchdog struct {
	// Sampler supplies the figures. Required unless every rule has a Value.
	// The Watchdog reads it but neither starts nor stops it.
	Sampler *Sampler
	// Rules are watched independently; the first to trip acts. At least one.
	Rules []Rule
	// Interval is the time between two readings of the figures. Default:
	// the Sampler's interval, or 1 s without one.
	Interval time.Duration
	// OnTrip, if set, is called when a rule trips, on the Watchdog's
	// goroutine, instead of draining and exiting. The rule then starts
	// over and watching goes on.
	OnTrip func(Trip)
	// Drain, if set, is called first when a rule trips, with a context that
	// ends after DrainTimeout; typically an http.Server's Shutdown. Its
	// error is logged and the exit goes ahead.
	Drain func(ctx context.Context) error
	// DrainTimeout bounds Drain. Default: 30 s.
	DrainTimeout time.Duration
	// ReExec, if set, replaces the process with a fresh run of the same
	// program (os.Executable, else os.Args[0]), with the same arguments
	// and environment, after Drain, instead of exiting: the pid stays, and
	// a supervisor sees no exit. The new program must be able to listen
	// again, which Drain's closing of the listeners allows; file
	// descriptors are not inherited (Go opens them close-on-exec). If the
	// exec fails the process exits with ExitDegraded.
	ReExec bool
	// Exit ends the process. Default: os.Exit. Tests replace it.
	Exit func(code int)
	// Exec replaces the process image. Default: syscall.Exec. Tests
	// replace it.
	Exec func(argv0 string, argv []string, envv []string) error
	// Logger receives the trip, the drain and the exit. Default:
	// slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	started bool
	stop    chan struct{}
	done    chan struct{}
}

// Validate reports every problem of w's configuration at once, or nil.
func (w *Watchdog) Validate() error {
	var errs []error
	if len(w.Rules) == 0 {
		errs = append(errs, errors.New("rules: none"))
	}
	needSampler := false
	for i, r := range w.Rules {
		switch {
		case r.Value != nil && r.Metric == "":
			errs = append(errs, fmt.Errorf("rules[%d].metric: a rule with a Value needs a name", i))
		case r.Value == nil && r.Metric != MetricCPU && r.Metric != MetricMemory && r.Metric != MetricInFlight && r.Metric != MetricRSS:
			errs = append(errs, fmt.Errorf("rules[%d].metric: unknown metric %q (cpu, mem, inflight, rss, or set Value)", i, r.Metric))
		case r.Value == nil:
			needSampler = true
		}
		if math.IsNaN(r.Threshold) {
			errs = append(errs, fmt.Errorf("rules[%d].threshold: NaN", i))
		}
		if r.For < 0 {
			errs = append(errs, fmt.Errorf("rules[%d].for: %v is negative", i, r.For))
		}
	}
	if needSampler && w.Sampler == nil {
		errs = append(errs, errors.New("sampler: required by rules on cpu, mem, inflight or rss"))
	}
	if w.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval: %v is negative", w.Interval))
	}
	if w.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain timeout: %v is negative", w.DrainTimeout))
	}
	return errors.Join(errs...)
}

// Start validates w, fills in its defaults and starts watching. It fails if
// w is invalid or already started.
func (w *Watchdog) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("watchdog: already started")
	}
	if err := w.Validate(); err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	if w.Interval == 0 {
		w.Interval = DefaultInterval
		if w.Sampler != nil {
			w.Interval = w.Sampler.Interval()
		}
	}
	if w.DrainTimeout == 0 {
		w.DrainTimeout = DefaultDrainTimeout
	}
	if w.Exit == nil {
		w.Exit = os.Exit
	}
	if w.Exec == nil {
		w.Exec = syscall.Exec
	}
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	w.started = true
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go w.run(w.stop, w.done)
	return nil
}

// Stop stops watching and waits for the Watchdog's goroutine to return. If a
// rule has tripped and the restart is under way, Stop waits for it to end,
// which with the default Exit it never does; so Drain, OnTrip and Exit must
// neither call Stop nor wait for a goroutine that does. Stop without Start,
// or after Stop, does nothing.
func (w *Watchdog) Stop() {
	w.mu.Lock()
	stop, done := w.stop, w.done
	w.stop = nil
	w.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
}

func (w *Watchdog) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	since := make([]time.Time, len(w.Rules))
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			trip, ok := w.observe(since, now)
			if !ok {
				continue
			}
			if w.OnTrip != nil {
				w.logTrip(trip, "on_trip")
				w.OnTrip(trip)
				continue
			}
			w.restart(trip)
			return
		}
	}
}

// observe reads every rule's metric at now and updates since, the start of
// each rule's run past its threshold (zero if not past it). It returns the
// first rule that has been past its threshold for its For, and starts that
// rule over.
func (w *Watchdog) observe(since []time.Time, now time.Time) (Trip, bool) {
	var f Figures
	if w.Sampler != nil {
		f = w.Sampler.Figures()
	}
	var trip Trip
	tripped := false
	for i := range w.Rules {
		r := &w.Rules[i]
		v := r.value(f)
		if !(v > r.Threshold) {
			since[i] = time.Time{}
			continue
		}
		if since[i].IsZero() {
			since[i] = now
		}
		// Ticks come a little early or late: a run within half an
		// interval of For has lasted For.
		if !tripped && now.Sub(since[i])+w.Interval/2 >= r.For {
			trip, tripped = Trip{Rule: *r, Value: v, Since: since[i], At: now}, true
			since[i] = time.Time{}
		}
	}
	return trip, tripped
}

func (w *Watchdog) logTrip(t Trip, action string) {
	w.Logger.Error("watchdog: rule tripped",
		"rule", t.Rule.String(), "metric", string(t.Rule.Metric),
		"value", t.Value, "threshold", t.Rule.Threshold,
		"past_for", t.At.Sub(t.Since).Round(time.Millisecond), "action", action)
}

// restart drains, then exits with ExitDegraded or re-executes the program.
func (w *Watchdog) restart(t Trip) {
	action := fmt.Sprintf("drain, exit %d", ExitDegraded)
	if w.ReExec {
		action = "drain, re-exec"
	}
	w.logTrip(t, action)
	if w.Drain != nil {
		w.Logger.Info("watchdog: draining", "timeout", w.DrainTimeout)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), w.DrainTimeout)
		err := w.Drain(ctx)
		cancel()
		if err != nil {
			w.Logger.Error("watchdog: drain failed", "err", err, "took", time.Since(start).Round(time.Millisecond))
		} else {
			w.Logger.Info("watchdog: drained", "took", time.Since(start).Round(time.Millisecond))
		}
	}
	if w.ReExec {
		path, err := os.Executable()
		if err != nil {
			path = os.Args[0]
		}
		w.Logger.Warn("watchdog: re-executing", "path", path, "args", os.Args[1:])
		err = w.Exec(path, os.Args, os.Environ())
		// Exec returns only on failure, or when a test's Exec does.
		if err == nil {
			return
		}
		w.Logger.Error("watchdog: re-exec failed", "path", path, "err", err)
	}
	w.Logger.Warn("watchdog: exiting", "code", ExitDegraded)
	w.Exit(ExitDegraded)
}
