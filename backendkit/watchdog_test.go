package backendkit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// logBuffer collects a Logger's output from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// The decision alone, on samples at chosen times: a rule trips once its
// metric has been past the threshold in every sample for For.
func TestWatchdogObserve(t *testing.T) {
	type sample struct {
		at time.Duration
		v  float64
	}
	tests := []struct {
		name    string
		for_    time.Duration
		samples []sample
		trips   []int // indexes of the samples that trip
	}{
		{"stays above", time.Second, []sample{{0, 0.9}, {500 * time.Millisecond, 0.9}, {time.Second, 0.9}}, []int{2}},
		{"not long enough yet", time.Second, []sample{{0, 0.9}, {949 * time.Millisecond, 0.9}}, nil},
		{"within half an interval is long enough", time.Second, []sample{{0, 0.9}, {950 * time.Millisecond, 0.9}}, []int{1}},
		{"at the threshold is not past it", 0, []sample{{0, 0.5}, {time.Second, 0.5}, {2 * time.Second, 0.5}}, nil},
		{"a dip starts over", time.Second, []sample{
			{0, 0.9}, {500 * time.Millisecond, 0.9}, {900 * time.Millisecond, 0.1},
			{1200 * time.Millisecond, 0.9}, {2000 * time.Millisecond, 0.9}, {2200 * time.Millisecond, 0.9},
		}, []int{5}},
		{"brief crossings never trip", time.Second, []sample{
			{0, 0.9}, {300 * time.Millisecond, 0.2}, {600 * time.Millisecond, 0.9}, {900 * time.Millisecond, 0.9},
			{1200 * time.Millisecond, 0.4}, {1500 * time.Millisecond, 0.9}, {10 * time.Second, 0.3},
		}, nil},
		{"for 0 trips at once", 0, []sample{{0, 0.1}, {time.Second, 0.51}}, []int{1}},
		{"after a trip the rule starts over", time.Second, []sample{
			{0, 0.9}, {time.Second, 0.9}, {1500 * time.Millisecond, 0.9}, {2400 * time.Millisecond, 0.9}, {2460 * time.Millisecond, 0.9},
		}, []int{1, 4}},
		{"NaN is not past", 0, []sample{{0, math.NaN()}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v float64
			w := &Watchdog{Interval: 100 * time.Millisecond, Rules: []Rule{{Metric: "custom", Value: func() float64 { return v }, Threshold: 0.5, For: tt.for_}}}
			since := make([]time.Time, 1)
			t0 := time.Unix(1e9, 0)
			var trips []int
			for i, s := range tt.samples {
				v = s.v
				trip, ok := w.observe(since, t0.Add(s.at))
				if !ok {
					continue
				}
				trips = append(trips, i)
				if trip.Value != s.v || trip.At != t0.Add(s.at) || trip.At.Sub(trip.Since)+50*time.Millisecond < tt.for_ || trip.Rule.Metric != "custom" {
					t.Errorf("sample %d: trip %+v", i, trip)
				}
			}
			if !slices.Equal(trips, tt.trips) {
				t.Fatalf("trips at samples %v, want %v", trips, tt.trips)
			}
		})
	}
}

// Each metric reads its figure; the first rule past its For trips, the
// others keep their state.
func TestWatchdogMetrics(t *testing.T) {
	f := Figures{CPU: 0.5, Memory: 0.6, InFlight: 7, RSSBytes: 1 << 30}
	s := fixed(t, f)
	for _, tt := range []struct {
		m    Metric
		want float64
	}{{MetricCPU, 0.5}, {MetricMemory, 0.6}, {MetricInFlight, 7}, {MetricRSS, 1 << 30}} {
		r := Rule{Metric: tt.m}
		if got := r.value(s.Figures()); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.m, got, tt.want)
		}
	}
	w := &Watchdog{Sampler: s, Rules: []Rule{
		{Metric: MetricCPU, Threshold: 0.4, For: 2 * time.Second},
		{Metric: MetricInFlight, Threshold: 5, For: time.Second},
		{Metric: MetricRSS, Threshold: 1 << 29, For: time.Second},
	}}
	since := make([]time.Time, 3)
	t0 := time.Unix(1e9, 0)
	if _, ok := w.observe(since, t0); ok {
		t.Fatal("tripped at the first sample")
	}
	trip, ok := w.observe(since, t0.Add(time.Second))
	if !ok || trip.Rule.Metric != MetricInFlight || trip.Value != 7 {
		t.Fatalf("trip %+v, %v; want inflight", trip, ok)
	}
	if !since[0].Equal(t0) || !since[1].IsZero() || !since[2].Equal(t0) {
		t.Fatalf("since %v", since)
	}
	trip, ok = w.observe(since, t0.Add(1500*time.Millisecond))
	if !ok || trip.Rule.Metric != MetricRSS {
		t.Fatalf("trip %+v, %v; want rss", trip, ok)
	}
}

// events records what a Watchdog did, in order.
type events struct {
	mu   sync.Mutex
	list []string
	ch   chan string
}

func newEvents() *events { return &events{ch: make(chan string, 100)} }

func (e *events) add(s string) {
	e.mu.Lock()
	e.list = append(e.list, s)
	e.mu.Unlock()
	e.ch <- s
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

func (e *events) await(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(liveness)
	for {
		select {
		case got := <-e.ch:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %q within %v; events %q", want, liveness, e.all())
		}
	}
}

// A rule that trips drains the server with a deadline, logs why, and exits
// with ExitDegraded.
func TestWatchdogDrainsAndExits(t *testing.T) {
	var logs logBuffer
	ev := newEvents()
	w := &Watchdog{
		Sampler:      fixed(t, Figures{Memory: 0.97}),
		Rules:        []Rule{{Metric: MetricMemory, Threshold: 0.9, For: 30 * time.Millisecond}},
		Interval:     5 * time.Millisecond,
		DrainTimeout: time.Minute,
		Drain: func(ctx context.Context) error {
			if d, ok := ctx.Deadline(); !ok || time.Until(d) < 50*time.Second {
				t.Errorf("drain deadline %v, %v; want about a minute", d, ok)
			}
			ev.add("drain")
			return nil
		},
		Exit:   func(code int) { ev.add("exit " + strconv.Itoa(code)) },
		Logger: logs.logger(),
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	ev.await(t, "exit 75")
	w.Stop()
	if got := ev.all(); !slices.Equal(got, []string{"drain", "exit 75"}) {
		t.Fatalf("events %q", got)
	}
	for _, want := range []string{
		`level=ERROR msg="watchdog: rule tripped" rule="mem > 0.9 for 30ms" metric=mem value=0.97 threshold=0.9`,
		`action="drain, exit 75"`,
		`msg="watchdog: draining" timeout=1m0s`,
		`msg="watchdog: drained"`,
		`msg="watchdog: exiting" code=75`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// A metric past its threshold for less than For does not trip the rule,
// however often the Watchdog looks.
func TestWatchdogBriefCrossingDoesNotTrip(t *testing.T) {
	var reads atomic.Int64
	s := newSampler(t, SamplerConfig{Adjust: func(f Figures) Figures {
		f.Memory = 0.1
		if reads.Add(1) <= 3 { // the first three readings are past 0.9
			f.Memory = 0.99
		}
		return f
	}})
	var exits atomic.Int64
	w := &Watchdog{
		Sampler:  s,
		Rules:    []Rule{{Metric: MetricMemory, Threshold: 0.9, For: 5 * time.Second}},
		Interval: time.Millisecond,
		Drain:    func(context.Context) error { exits.Add(1); return nil },
		Exit:     func(int) { exits.Add(1) },
		Logger:   slog.New(slog.DiscardHandler),
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	await(t, "100 readings", func() bool { return reads.Load() >= 100 })
	w.Stop()
	if exits.Load() != 0 {
		t.Fatal("a brief crossing tripped the watchdog")
	}
}

// With ReExec, the program is executed again in place of the process after
// the drain; if that fails, the process exits.
func TestWatchdogReExec(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, fail := range []bool{false, true} {
		var logs logBuffer
		ev := newEvents()
		w := &Watchdog{
			Rules:    []Rule{{Metric: "queue", Value: func() float64 { return 100 }, Threshold: 10}},
			Interval: time.Millisecond,
			ReExec:   true,
			Drain:    func(context.Context) error { ev.add("drain"); return nil },
			Exec: func(argv0 string, argv, envv []string) error {
				if argv0 != self || !slices.Equal(argv, os.Args) || !slices.Equal(envv, os.Environ()) {
					t.Errorf("Exec(%q, %q, %d variables)", argv0, argv, len(envv))
				}
				ev.add("exec")
				if fail {
					return errors.New("exec format error")
				}
				return nil
			},
			Exit:   func(code int) { ev.add("exit " + strconv.Itoa(code)) },
			Logger: logs.logger(),
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		want := []string{"drain", "exec"}
		if fail {
			ev.await(t, "exit 75")
			want = append(want, "exit 75")
		} else {
			ev.await(t, "exec")
		}
		w.Stop() // returns: the goroutine ended after the (test's) exec
		if got := ev.all(); !slices.Equal(got, want) {
			t.Fatalf("fail=%v: events %q, want %q", fail, got, want)
		}
		wantLog := `msg="watchdog: re-executing" path=` + self
		if fail {
			wantLog = `msg="watchdog: re-exec failed" path=` + self + ` err="exec format error"`
		}
		if !strings.Contains(logs.String(), wantLog) || !strings.Contains(logs.String(), `rule="queue > 10 for 0s"`) {
			t.Fatalf("fail=%v: log lacks %q:\n%s", fail, wantLog, logs.String())
		}
	}
}

// A drain that overruns its deadline is logged, and the exit goes ahead.
func TestWatchdogDrainTimeout(t *testing.T) {
	var logs logBuffer
	ev := newEvents()
	w := &Watchdog{
		Rules:        []Rule{{Metric: "errors", Value: func() float64 { return 1 }}},
		Interval:     time.Millisecond,
		DrainTimeout: 10 * time.Millisecond,
		Drain:        func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		Exit:         func(code int) { ev.add("exit " + strconv.Itoa(code)) },
		Logger:       logs.logger(),
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	ev.await(t, "exit 75")
	w.Stop()
	if want := `msg="watchdog: drain failed" err="context deadline exceeded"`; !strings.Contains(logs.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, logs.String())
	}
}

// OnTrip replaces the restart; the rule starts over and watching goes on.
func TestWatchdogOnTrip(t *testing.T) {
	var logs logBuffer
	trips := make(chan Trip, 10)
	var other atomic.Int64
	w := &Watchdog{
		Rules:    []Rule{{Metric: "queue", Value: func() float64 { return 3 }, Threshold: 2, For: 2 * time.Millisecond}},
		Interval: time.Millisecond,
		OnTrip: func(tr Trip) {
			select {
			case trips <- tr:
			default:
			}
		},
		Drain:  func(context.Context) error { other.Add(1); return nil },
		Exit:   func(int) { other.Add(1) },
		Logger: logs.logger(),
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case tr := <-trips:
			if tr.Value != 3 || tr.Rule.Threshold != 2 || tr.At.Sub(tr.Since)+time.Millisecond/2 < 2*time.Millisecond {
				t.Errorf("trip %+v", tr)
			}
		case <-time.After(liveness):
			t.Fatal("no trip")
		}
	}
	w.Stop()
	if other.Load() != 0 {
		t.Fatal("OnTrip set, but the watchdog drained or exited")
	}
	if !strings.Contains(logs.String(), `action=on_trip`) {
		t.Fatalf("log:\n%s", logs.String())
	}
}

func TestWatchdogValidate(t *testing.T) {
	s := fixed(t, Figures{})
	one := func() float64 { return 1 }
	tests := []struct {
		name string
		w    *Watchdog
		want []string
	}{
		{"valid", &Watchdog{Sampler: s, Rules: []Rule{{Metric: MetricCPU, Threshold: 0.9, For: time.Second}}}, nil},
		{"custom rules need no sampler", &Watchdog{Rules: []Rule{{Metric: "queue", Value: one}}}, nil},
		{"no rules", &Watchdog{Sampler: s}, []string{"rules: none"}},
		{"every problem", &Watchdog{
			Rules: []Rule{
				{Metric: "disk"},
				{Value: one},
				{Metric: MetricMemory, Threshold: math.NaN(), For: -time.Second},
			},
			Interval:     -1,
			DrainTimeout: -1,
		}, []string{
			`rules[0].metric: unknown metric "disk" (cpu, mem, inflight, rss, or set Value)`,
			"rules[1].metric: a rule with a Value needs a name",
			"rules[2].threshold: NaN",
			"rules[2].for: -1s is negative",
			"sampler: required by rules on cpu, mem, inflight or rss",
			"interval: -1ns is negative",
			"drain timeout: -1ns is negative",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.w.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want it to contain %q", err, w)
				}
			}
			if err := tt.w.Start(); err == nil || !strings.HasPrefix(err.Error(), "watchdog: ") {
				tt.w.Stop()
				t.Fatalf("Start: %v", err)
			}
		})
	}
}

// Start fills in the defaults; a second Start fails; Stop may come before
// Start and more than once.
func TestWatchdogLifecycle(t *testing.T) {
	(&Watchdog{}).Stop()
	s := newSampler(t, SamplerConfig{Interval: 250 * time.Millisecond})
	w := &Watchdog{Sampler: s, Rules: []Rule{{Metric: MetricCPU, Threshold: 2}}}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	if w.Interval != 250*time.Millisecond || w.DrainTimeout != DefaultDrainTimeout || w.Exit == nil || w.Exec == nil || w.Logger == nil {
		t.Fatalf("defaults: %+v", w)
	}
	if err := w.Start(); err == nil || err.Error() != "watchdog: already started" {
		t.Fatalf("second Start: %v", err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(w.Stop)
	}
	wg.Wait()
	w2 := &Watchdog{Rules: []Rule{{Metric: "x", Value: func() float64 { return 0 }}}}
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if w2.Interval != DefaultInterval {
		t.Fatalf("interval without a sampler: %v", w2.Interval)
	}
}
