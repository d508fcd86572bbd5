// Command reload measures request latency while the proxy reloads its
// configuration, beside the same load with no reloads. Three backends sit
// behind one pool served by wproxy in this process; the configuration file
// alternates between two versions that differ in policy module and backends:
//
//	X: round_robin (built in) over backends a, b and c
//	Y: first_healthy.wasm (built from examples/policies/go/first_healthy) over a and b
//
// A closed-loop load of keep-alive clients and of clients that open a new
// connection per request runs in two kinds of phase: "steady", with no
// reload (half of it with X, half with Y, the one switch made while no
// request runs), and "reloading", with the configuration file rewritten
// and Server.ReloadFile called every -every, alternating X and Y. Each
// round runs both phases back to back, the order alternating from round to
// round. It prints every phase's latency percentiles, the per-round ratios
// reloading/steady and their median, and how long a reload takes, and exits
// 1 if any request failed or any reload was rejected.
//
//	go run ./bench/reload [-duration 5s] [-rounds 3] [-clients 32] [-fresh 4] [-every 100ms] [-builtin]
//
// With -builtin, Y is least_request (built in) over a and b, and nothing is
// compiled with the Go toolchain.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wproxy/wproxy/core/balancer"
	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/demo"
	"github.com/wproxy/wproxy/core/server"
	"github.com/wproxy/wproxy/internal/gowasm"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "length of each phase")
	rounds := flag.Int("rounds", 3, "rounds, each a steady and a reloading phase")
	clients := flag.Int("clients", 32, "concurrent keep-alive clients")
	fresh := flag.Int("fresh", 4, "concurrent clients that open a new connection per request")
	every := flag.Duration("every", 100*time.Millisecond, "time between reloads in a reloading phase")
	builtin := flag.Bool("builtin", false, "Y uses the built-in least_request instead of first_healthy.wasm (no Go build)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the measured phases to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "reload:", err)
			os.Exit(1)
		}
		profile = f
	}
	if err := run(*duration, *rounds, *clients, *fresh, *every, *builtin); err != nil {
		fmt.Fprintln(os.Stderr, "reload:", err)
		os.Exit(1)
	}
}

// sample is one request: when it started, from the start of its phase, and
// how long it took, in ns.
type sample struct {
	start, lat int64
	fresh      bool // on a new connection
}

// phase is what one phase measured.
type phase struct {
	samples []sample
	failed  int64
	elapsed time.Duration
	cpu     time.Duration // this process's user and system time
	gcs     uint32        // garbage collections
	alloc   uint64        // bytes allocated
	reloads []sample      // start (from the start of the phase) and duration of each ReloadFile
}

// proxy is the proxy under test with its configuration file.
type proxy struct {
	dir      string
	srv      *server.Server
	url      string
	configs  [2]string // X, Y
	current  int       // index into configs of the one in force
	reloadMu sync.Mutex
	failures failureLog
	pools    []*balancer.Pool // every pool that served in the measured phases
}

// failureLog counts failures and keeps the first few messages.
type failureLog struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (f *failureLog) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n, f.first = 0, nil
}

func (f *failureLog) add(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if len(f.first) < 5 {
		f.first = append(f.first, msg)
	}
}

// logSink counts the proxy's log lines of level warning and above and keeps
// the first few.
type logSink struct{ failureLog }

func (l *logSink) Write(p []byte) (int, error) {
	l.add(strings.TrimSpace(string(p)))
	return len(p), nil
}

// profile, when not nil, receives a CPU profile of the measured phases.
var profile *os.File

func run(duration time.Duration, rounds, clients, fresh int, every time.Duration, builtin bool) error {
	backends, err := demo.StartBackends(3)
	if err != nil {
		return err
	}
	defer backends.Close()
	a, b, c := backends.Addrs[0], backends.Addrs[1], backends.Addrs[2]

	dir, err := os.MkdirTemp("", "wproxy-bench-reload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	yPolicy, yName := "least_request", "least_request"
	if !builtin {
		t0 := time.Now()
		module, err := buildModule("github.com/wproxy/wproxy/examples/policies/go/first_healthy", dir)
		if err != nil {
			return fmt.Errorf("%w (-builtin avoids the build)", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "first_healthy.wasm"), module, 0o644); err != nil {
			return err
		}
		fmt.Printf("built first_healthy.wasm (%d bytes) in %s\n", len(module), time.Since(t0).Round(time.Millisecond))
		yPolicy, yName = "first_healthy.wasm", "first_healthy.wasm"
	}
	// The compiled modules are kept across runs, as the proxy does by
	// default; within the process each is compiled once anyway.
	const template = `
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    policy: %s
    backends: [%s]
wasm: {cache_dir: %s}
`
	cache := filepath.Join(os.TempDir(), "wproxy-bench-wasm-cache")
	px := &proxy{dir: dir, configs: [2]string{
		fmt.Sprintf(template, "round_robin", fmt.Sprintf("{address: %s}, {address: %s}, {address: %s}", a, b, c), cache),
		fmt.Sprintf(template, yPolicy, fmt.Sprintf("{address: %s}, {address: %s}", a, b), cache),
	}}
	if err := px.write(0); err != nil {
		return err
	}
	cfg, err := config.Load(px.file())
	if err != nil {
		return err
	}
	sink := &logSink{}
	logger := slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelWarn}))
	px.srv, err = server.Build(context.Background(), cfg, logger)
	if err != nil {
		return err
	}
	if err := px.srv.Start(); err != nil {
		return err
	}
	defer px.srv.Shutdown(context.Background())
	px.url = "http://" + px.srv.Addrs()[0] + "/"

	ld := newLoad(px.url, clients, fresh)
	defer ld.close()

	fmt.Printf("X: round_robin over 3 backends; Y: %s over 2; %d keep-alive + %d new-connection clients; %s phases; a reload every %s; %d rounds; GOMAXPROCS %d\n\n",
		yName, clients, fresh, duration, every, rounds, runtime.GOMAXPROCS(0))

	// Warm up: connections, instances, and Y compiled by a first reload.
	ld.run(time.Second)
	for _, next := range []int{1, 0} {
		if _, err := px.reload(next); err != nil {
			return fmt.Errorf("warm-up reload: %w", err)
		}
		ld.run(500 * time.Millisecond)
	}
	// What a reload costs with no load, for reference.
	var idle []sample
	for range 20 {
		took, err := px.reload(1 - px.current)
		if err != nil {
			return fmt.Errorf("warm-up reload: %w", err)
		}
		idle = append(idle, sample{lat: int64(took)})
		time.Sleep(20 * time.Millisecond)
	}
	if px.current != 0 {
		if _, err := px.reload(0); err != nil {
			return err
		}
	}
	px.failures.reset()
	ld.failures.reset()
	sink.reset()
	warmOK, _ := px.srv.ReloadStats()
	px.pools = []*balancer.Pool{px.srv.Pool("p")}
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			return err
		}
	}

	type result struct{ steady, reloading *phase }
	results := make([]result, rounds)
	for r := range rounds {
		order := []string{"steady", "reloading"}
		if r%2 == 1 {
			order = []string{"reloading", "steady"}
		}
		for _, kind := range order {
			switch kind {
			case "steady":
				// Half with each configuration; the switch is made while
				// no request runs, and is given time to retire the old
				// pool.
				first := ld.run(duration / 2)
				if _, err := px.reload(1 - px.current); err != nil {
					return err
				}
				time.Sleep(200 * time.Millisecond)
				second := ld.run(duration - duration/2)
				results[r].steady = merge(first, second)
			case "reloading":
				results[r].reloading = px.reloading(ld, duration, every)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}

	if profile != nil {
		pprof.StopCPUProfile()
		profile.Close()
	}

	// The table.
	fmt.Printf("%-5s %-9s %8s %6s %7s %7s %7s %7s %8s %8s %8s\n", "round", "phase", "requests", "failed", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "CPU µs")
	line := func(round, kind string, p *phase) {
		q := quantiles(p.samples)
		fmt.Printf("%-5s %-9s %8d %6d %7.0f %7.2f %7.2f %7.2f %8.2f %8.2f %8.1f\n", round, kind, int64(len(p.samples))+p.failed, p.failed,
			rate(p), q(0.5), q(0.9), q(0.99), q(0.999), q(1), cpuPerRequest(p))
	}
	var allSteady, allReloading *phase
	for r, res := range results {
		line(fmt.Sprint(r+1), "steady", res.steady)
		line(fmt.Sprint(r+1), "reloading", res.reloading)
		allSteady, allReloading = merge(allSteady, res.steady), merge(allReloading, res.reloading)
	}
	line("all", "steady", allSteady)
	line("all", "reloading", allReloading)

	fmt.Println()
	for _, fresh := range []bool{false, true} {
		kind := "keep-alive clients:    "
		if fresh {
			kind = "new-connection clients:"
		}
		s, l := quantiles(byKind(allSteady.samples, fresh)), quantiles(byKind(allReloading.samples, fresh))
		fmt.Printf("%s steady p50 %.2f ms, p99 %.2f ms; reloading p50 %.2f ms, p99 %.2f ms\n", kind, s(0.5), s(0.99), l(0.5), l(0.99))
	}

	fmt.Printf("\n%-6s %10s %10s %12s %10s %12s\n", "round", "p50 ratio", "p99 ratio", "p99.9 ratio", "req/s ratio", "CPU/req ratio")
	var r50, r99, r999, rrate, rcpu []float64
	for r, res := range results {
		s, l := quantiles(res.steady.samples), quantiles(res.reloading.samples)
		r50, r99, r999 = append(r50, l(0.5)/s(0.5)), append(r99, l(0.99)/s(0.99)), append(r999, l(0.999)/s(0.999))
		rrate = append(rrate, rate(res.reloading)/rate(res.steady))
		rcpu = append(rcpu, cpuPerRequest(res.reloading)/cpuPerRequest(res.steady))
		fmt.Printf("%-6d %10.2f %10.2f %12.2f %10.2f %12.2f\n", r+1, r50[r], r99[r], r999[r], rrate[r], rcpu[r])
	}
	fmt.Printf("%-6s %10.2f %10.2f %12.2f %10.2f %12.2f   (reloading / steady)\n", "median", median(r50), median(r99), median(r999), median(rrate), median(rcpu))

	var durations []sample
	var during, outside []sample
	for _, res := range results {
		durations = append(durations, res.reloading.reloads...)
		d, o := splitByReloads(res.reloading)
		during, outside = append(during, d...), append(outside, o...)
	}
	ok, rejected := px.srv.ReloadStats()
	ok -= warmOK
	dq := quantilesOf(durations, func(s sample) int64 { return s.lat })
	iq := quantiles(idle)
	fmt.Printf("\nreloads: %d done, %d rejected (in reloading phases: %d); ReloadFile under load p50 %.1f ms, p90 %.1f ms, max %.1f ms; with no load (%d) p50 %.1f ms, max %.1f ms\n",
		ok, rejected, len(durations), dq(0.5), dq(0.9), dq(1), len(idle), iq(0.5), iq(1))
	fmt.Printf("Go heap (clients, proxy and backends): steady %.1f GCs/s, %.0f MB allocated/s, %.1f KB/request; reloading %.1f GCs/s, %.0f MB/s, %.1f KB/request\n",
		float64(allSteady.gcs)/allSteady.elapsed.Seconds(), float64(allSteady.alloc)/1e6/allSteady.elapsed.Seconds(), float64(allSteady.alloc)/1e3/float64(len(allSteady.samples)),
		float64(allReloading.gcs)/allReloading.elapsed.Seconds(), float64(allReloading.alloc)/1e6/allReloading.elapsed.Seconds(), float64(allReloading.alloc)/1e3/float64(len(allReloading.samples)))
	var created, failures, fallbacks uint64
	for _, p := range px.pools {
		st := p.Stats()
		created, failures, fallbacks = created+st.Module.InstancesCreated, failures+st.Module.Failures, fallbacks+st.Fallbacks
	}
	fmt.Printf("pools: %d built, %d module instances created (%.2f a pool; the first at the reload, the others by a request's pick), %d module failures, %d picks by the fallback\n",
		len(px.pools), created, float64(created)/float64(len(px.pools)), failures, fallbacks)
	qd, qo := quantiles(during), quantiles(outside)
	fmt.Printf("reloading phases, requests that overlapped a ReloadFile call: %d, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", len(during), qd(0.5), qd(0.99), qd(1))
	fmt.Printf("reloading phases, the other requests:                        %d, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", len(outside), qo(0.5), qo(0.99), qo(1))

	var errs []error
	failed := allSteady.failed + allReloading.failed
	if failed > 0 {
		errs = append(errs, fmt.Errorf("%d requests failed; first: %s", failed, strings.Join(ld.failures.first, "; ")))
	}
	if px.failures.n > 0 {
		errs = append(errs, fmt.Errorf("%d reloads failed; first: %s", px.failures.n, strings.Join(px.failures.first, "; ")))
	}
	if sink.n > 0 {
		fmt.Printf("\nthe proxy logged %d warnings or errors; first:\n  %s\n", sink.n, strings.Join(sink.first, "\n  "))
	}
	return errors.Join(errs...)
}

func (px *proxy) file() string { return filepath.Join(px.dir, "wproxy.yaml") }

// write makes configs[i] the configuration file, replacing it whole.
func (px *proxy) write(i int) error {
	tmp := px.file() + ".tmp"
	if err := os.WriteFile(tmp, []byte(px.configs[i]), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, px.file())
}

// reload rewrites the configuration file as configs[next] and reloads it,
// returning how long ReloadFile took.
func (px *proxy) reload(next int) (time.Duration, error) {
	px.reloadMu.Lock()
	defer px.reloadMu.Unlock()
	if err := px.write(next); err != nil {
		return 0, err
	}
	t0 := time.Now()
	err := px.srv.ReloadFile(context.Background())
	d := time.Since(t0)
	if err != nil {
		px.failures.add(err.Error())
		return d, err
	}
	px.current = next
	px.pools = append(px.pools, px.srv.Pool("p"))
	return d, nil
}

// reloading runs the load for d while reloading every interval, alternating
// the configurations.
func (px *proxy) reloading(ld *load, d, interval time.Duration) *phase {
	done := make(chan []sample)
	start := time.Now()
	go func() {
		var reloads []sample
		t := time.NewTicker(interval)
		defer t.Stop()
		stop := time.After(d)
		for {
			select {
			case <-stop:
				done <- reloads
				return
			case <-t.C:
				begin := time.Since(start)
				took, err := px.reload(1 - px.current)
				if err == nil {
					reloads = append(reloads, sample{start: int64(begin), lat: int64(took)})
				}
			}
		}
	}()
	p := ld.runFrom(start, d)
	p.reloads = <-done
	return p
}

// load is the clients, kept across phases so that keep-alive connections
// stay open.
type load struct {
	url      string
	clients  []*http.Client
	fresh    int // the last fresh clients open a new connection per request
	failures failureLog
}

func newLoad(url string, keepAlive, fresh int) *load {
	ld := &load{url: url, fresh: fresh}
	for i := range keepAlive + fresh {
		ld.clients = append(ld.clients, &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableKeepAlives: i >= keepAlive},
		})
	}
	return ld
}

func (ld *load) close() {
	for _, c := range ld.clients {
		c.CloseIdleConnections()
	}
}

func (ld *load) run(d time.Duration) *phase { return ld.runFrom(time.Now(), d) }

// runFrom runs every client closed-loop until start+d and returns every
// request's start and latency.
func (ld *load) runFrom(start time.Time, d time.Duration) *phase {
	var (
		mu     sync.Mutex
		all    []sample
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	deadline := start.Add(d)
	cpu0 := cpuTime()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i, c := range ld.clients {
		fresh := i >= len(ld.clients)-ld.fresh
		wg.Go(func() {
			var mine []sample
			for {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				if err := ld.get(c); err != nil {
					failed.Add(1)
					ld.failures.add(fmt.Sprintf("%s: %v", t0.Format("15:04:05.000"), err))
					continue
				}
				mine = append(mine, sample{int64(t0.Sub(start)), int64(time.Since(t0)), fresh})
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	return &phase{samples: all, failed: failed.Load(), elapsed: elapsed, cpu: cpu, gcs: m1.NumGC - m0.NumGC, alloc: m1.TotalAlloc - m0.TotalAlloc}
}

func (ld *load) get(c *http.Client) error {
	resp, err := c.Get(ld.url)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return err
}

// buildModule compiles the Go package pkg for GOOS=wasip1 GOARCH=wasm with
// the flags of the default modules.
func buildModule(pkg, dir string) ([]byte, error) {
	out := filepath.Join(dir, "build.wasm")
	args := append([]string{"build"}, gowasm.Flags...)
	args = append(args, "-o", out, pkg)
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		goCmd = "go"
	}
	cmd := exec.Command(goCmd, args...)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	defer os.Remove(out)
	return os.ReadFile(out)
}

// cpuTime returns the user and system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// merge returns the phases a and b (either may be nil) as one.
func merge(a, b *phase) *phase {
	if a == nil {
		return b
	}
	return &phase{
		samples: append(slices.Clip(a.samples), b.samples...),
		failed:  a.failed + b.failed,
		elapsed: a.elapsed + b.elapsed,
		cpu:     a.cpu + b.cpu,
		gcs:     a.gcs + b.gcs,
		alloc:   a.alloc + b.alloc,
		reloads: append(slices.Clip(a.reloads), b.reloads...),
	}
}

// rate is a phase's answered requests per second.
func rate(p *phase) float64 { return float64(len(p.samples)) / p.elapsed.Seconds() }

// cpuPerRequest is this process's CPU time (clients, proxy and backends) per
// request of a phase, in µs.
func cpuPerRequest(p *phase) float64 {
	return float64(p.cpu.Microseconds()) / float64(max(int64(len(p.samples))+p.failed, 1))
}

func byKind(samples []sample, fresh bool) []sample {
	var out []sample
	for _, s := range samples {
		if s.fresh == fresh {
			out = append(out, s)
		}
	}
	return out
}

// splitByReloads divides a reloading phase's requests into those that were
// in flight at some moment of a ReloadFile call and the others.
func splitByReloads(p *phase) (during, outside []sample) {
	rs := p.reloads // in start order, not overlapping
	for _, s := range p.samples {
		end := s.start + s.lat
		// The first reload that ends after the request starts.
		i := sort.Search(len(rs), func(i int) bool { return rs[i].start+rs[i].lat > s.start })
		if i < len(rs) && rs[i].start < end {
			during = append(during, s)
		} else {
			outside = append(outside, s)
		}
	}
	return during, outside
}

// quantiles returns a function giving the latency quantile q (nearest rank;
// 1 is the maximum) of samples in ms.
func quantiles(samples []sample) func(q float64) float64 {
	return quantilesOf(samples, func(s sample) int64 { return s.lat })
}

func quantilesOf(samples []sample, f func(sample) int64) func(q float64) float64 {
	v := make([]int64, len(samples))
	for i, s := range samples {
		v[i] = f(s)
	}
	slices.Sort(v)
	return func(q float64) float64 {
		if len(v) == 0 {
			return math.NaN()
		}
		i := max(int(math.Ceil(q*float64(len(v))))-1, 0)
		return float64(v[i]) / 1e6
	}
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v) == 0 {
		return math.NaN()
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
