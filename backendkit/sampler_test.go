package backendkit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// liveness bounds how long a test waits for something that should happen
// much sooner; it only ends tests that would hang.
const liveness = 10 * time.Second

// await polls cond until it holds, failing the test after liveness.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %v for %s", liveness, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newSampler(t *testing.T, cfg SamplerConfig) *Sampler {
	t.Helper()
	s, err := NewSampler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func TestSamplerConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  SamplerConfig
		want []string
	}{
		{SamplerConfig{}, nil},
		{SamplerConfig{Interval: time.Millisecond, MemoryLimit: 1, Cores: 0.5}, nil},
		{SamplerConfig{Interval: -1}, []string{"interval: -1ns is negative"}},
		{SamplerConfig{MemoryLimit: -5, Cores: -1}, []string{"memory limit: -5 is negative", "cores: -1 is not"}},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%+v: %v", tt.cfg, err)
			}
			continue
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %v, want it to contain %q", tt.cfg, err, w)
			}
		}
		if _, err := NewSampler(tt.cfg); err == nil {
			t.Errorf("%+v: NewSampler accepted it", tt.cfg)
		}
	}
}

// The first sample, taken by NewSampler, has the memory figures.
func TestSamplerFirstSample(t *testing.T) {
	s := newSampler(t, SamplerConfig{})
	f := s.Figures()
	if f.RSSBytes <= 0 || f.LimitBytes <= 0 || f.At.IsZero() {
		t.Fatalf("figures %+v", f)
	}
	if want := float64(f.RSSBytes) / float64(f.LimitBytes); f.Memory != want {
		t.Fatalf("Memory %v, want RSS/limit %v", f.Memory, want)
	}
	if f.CPU != 0 || f.CPUCores != 0 {
		t.Fatalf("CPU figures before a second sample: %+v", f)
	}
	if s.Interval() != DefaultInterval {
		t.Fatalf("Interval() = %v", s.Interval())
	}
}

// Burning CPU on one goroutine shows in CPUCores, and in CPU as a fraction
// of Cores.
func TestSamplerCPU(t *testing.T) {
	s := newSampler(t, SamplerConfig{Interval: 20 * time.Millisecond, Cores: 4})
	s.Start()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		x := 1
		for !stop.Load() {
			for i := range 10000 {
				x = x*31 + i
			}
		}
		runtime.KeepAlive(x)
	})
	defer func() { stop.Store(true); wg.Wait() }()
	var f Figures
	await(t, "CPU use to show", func() bool { f = s.Figures(); return f.CPUCores > 0.05 })
	if f.CPU != min(1, f.CPUCores/4) {
		t.Fatalf("CPU %v, want CPUCores/4 = %v", f.CPU, f.CPUCores/4)
	}
	if f.CPU < 0 || f.CPU > 1 {
		t.Fatalf("CPU %v outside 0..1", f.CPU)
	}
}

// Memory the process touches shows in RSSBytes and Memory, against the
// configured limit.
func TestSamplerMemory(t *testing.T) {
	const limit = 1 << 40
	s := newSampler(t, SamplerConfig{Interval: 20 * time.Millisecond, MemoryLimit: limit})
	// Give back what earlier tests freed, or the heap would reuse
	// resident pages and RSS need not grow.
	debug.FreeOSMemory()
	before, err := rss()
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	buf := make([]byte, 64<<20)
	for i := 0; i < len(buf); i += os.Getpagesize() {
		buf[i] = 1
	}
	var f Figures
	await(t, "RSS to grow by 48 MiB", func() bool { f = s.Figures(); return f.RSSBytes-before >= 48<<20 })
	runtime.KeepAlive(buf)
	if f.LimitBytes != limit || f.Memory != float64(f.RSSBytes)/limit {
		t.Fatalf("figures %+v with limit %d", f, limit)
	}
}

// Track counts requests in flight while the handler runs; Begin and End
// count others.
func TestTrackInFlight(t *testing.T) {
	s := newSampler(t, SamplerConfig{})
	release := make(chan struct{})
	srv := httptest.NewServer(s.Track(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	})))
	defer srv.Close()
	const n = 5
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	await(t, "5 requests in flight", func() bool { return s.Figures().InFlight == n })
	s.Begin()
	if got := s.Figures().InFlight; got != n+1 {
		t.Fatalf("InFlight %d after Begin, want %d", got, n+1)
	}
	s.End()
	close(release)
	wg.Wait()
	await(t, "no request in flight", func() bool { return s.Figures().InFlight == 0 })
}

// Adjust rewrites what Figures returns, for tests that cross thresholds.
func TestSamplerAdjust(t *testing.T) {
	s := newSampler(t, SamplerConfig{Adjust: func(f Figures) Figures {
		f.CPU, f.Memory, f.InFlight = 0.5, f.Memory+1, f.InFlight+7
		return f
	}})
	f := s.Figures()
	if f.CPU != 0.5 || f.Memory <= 1 || f.InFlight != 7 {
		t.Fatalf("adjusted figures %+v", f)
	}
}

// Start and Stop may come in any order and number, from many goroutines.
func TestSamplerStartStop(t *testing.T) {
	s := newSampler(t, SamplerConfig{Interval: time.Millisecond})
	s.Stop() // before Start
	s.Start()
	s.Stop()

	s = newSampler(t, SamplerConfig{Interval: time.Millisecond})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(s.Start)
		wg.Go(func() { s.Figures() })
	}
	wg.Wait()
	first := s.Figures().At
	await(t, "a new sample", func() bool { return s.Figures().At.After(first) })
	for range 8 {
		wg.Go(s.Stop)
	}
	wg.Wait()
	select {
	case <-s.done:
	default:
		t.Fatal("the sampling goroutine outlived Stop")
	}
}
