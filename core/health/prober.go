package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wproxy/wproxy/hostabi/healthhost"
	"github.com/wproxy/wproxy/hostabi/wire"
)

// Target is a backend as the prober sees it.
type Target interface {
	Addr() string
	HealthStatus() *Status
}

// ProbeConfig configures a pool's active checks.
type ProbeConfig struct {
	Path      string        // GET this path
	Interval  time.Duration // between two probes of one backend
	Jitter    float64       // each interval varies by ± this fraction (0 to 0.5)
	Timeout   time.Duration // a probe without an answer by then fails
	Expected  []int         // statuses that mean healthy
	Headers   []string      // response headers handed to the evaluator
	BodyBytes int           // how much of the body the evaluator sees
	Rules     Rules
	// Evaluator judges probes; nil applies the built-in rule (expected
	// status: healthy; anything else: unhealthy).
	Evaluator *healthhost.Evaluator
	// ObserveEval, when set, is given the duration of every evaluation.
	ObserveEval func(time.Duration)
}

// Prober runs one probe loop per backend of a pool: one probe per backend
// per interval, whatever uses the pool. Start it once; Stop ends every loop.
type Prober struct {
	cfg      ProbeConfig
	pool     string
	targets  func() []Target
	onChange func()
	logger   *slog.Logger
	client   *http.Client

	evals, evalFailures atomic.Uint64

	mu      sync.Mutex
	loops   map[string]context.CancelFunc // by address
	wg      sync.WaitGroup
	stopped bool
}

// NewProber returns a prober for the targets targets returns; onChange is
// called (from a probe loop) after a backend's state changed.
func NewProber(pool string, cfg ProbeConfig, targets func() []Target, onChange func(), logger *slog.Logger) *Prober {
	if logger == nil {
		logger = slog.Default()
	}
	return &Prober{
		cfg: cfg, pool: pool, targets: targets, onChange: onChange, logger: logger.With("pool", pool),
		loops: map[string]context.CancelFunc{},
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
				MaxIdleConnsPerHost: 1,
				IdleConnTimeout:     2 * cfg.Interval,
				DisableCompression:  true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Sync starts a loop for every target without one and stops the loops of
// targets that are gone. Call it after the pool's members change.
func (p *Prober) Sync() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	seen := map[string]bool{}
	for _, t := range p.targets() {
		addr := t.Addr()
		seen[addr] = true
		if _, ok := p.loops[addr]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		p.loops[addr] = cancel
		p.wg.Add(1)
		go p.loop(ctx, t)
	}
	for addr, cancel := range p.loops {
		if !seen[addr] {
			cancel()
			delete(p.loops, addr)
		}
	}
}

// Start begins probing.
func (p *Prober) Start() { p.Sync() }

// Stop ends every loop and waits for them.
func (p *Prober) Stop() {
	p.mu.Lock()
	p.stopped = true
	for _, cancel := range p.loops {
		cancel()
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.client.CloseIdleConnections()
}

func (p *Prober) loop(ctx context.Context, t Target) {
	defer p.wg.Done()
	// Spread the pool's first probes over one interval.
	first := time.Duration(rand.Int64N(int64(p.cfg.Interval/4) + 1))
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		p.ProbeOnce(ctx, t)
		timer.Reset(p.next())
	}
}

func (p *Prober) next() time.Duration {
	d := p.cfg.Interval
	if j := p.cfg.Jitter; j > 0 {
		d = time.Duration(float64(d) * (1 + j*(2*rand.Float64()-1)))
	}
	return d
}

// EvalStats returns how many probes the evaluator judged and how many of
// those failed (the built-in rule judged them instead).
func (p *Prober) EvalStats() (calls, failures uint64) {
	return p.evals.Load(), p.evalFailures.Load()
}

// ProbeOnce probes t now and applies the verdict.
func (p *Prober) ProbeOnce(ctx context.Context, t Target) {
	probe := p.probe(ctx, t.Addr())
	if ctx.Err() != nil {
		return // stopping: the result means nothing
	}
	verdict, how := p.judge(probe)
	st := t.HealthStatus()
	before := st.State()
	cause := describe(probe, verdict, how)
	if st.RecordProbe(verdict, cause, p.cfg.Rules, time.Now()) {
		if after := st.State(); after != before {
			p.logger.Info("backend health changed", "backend", t.Addr(), "from", before.String(), "to", after.String(), "cause", cause)
		}
		if p.onChange != nil {
			p.onChange()
		}
	}
}

func (p *Prober) judge(probe *wire.Probe) (State, string) {
	if p.cfg.Evaluator != nil {
		p.evals.Add(1)
		t0 := time.Now()
		v, err := p.cfg.Evaluator.Evaluate(probe)
		if p.cfg.ObserveEval != nil {
			p.cfg.ObserveEval(time.Since(t0))
		}
		if err == nil {
			switch v {
			case healthhost.Healthy:
				return Up, "evaluator"
			case healthhost.Degraded:
				return Degraded, "evaluator"
			}
			return Down, "evaluator"
		}
		p.evalFailures.Add(1)
		p.logger.Warn("health evaluator failed; the built-in rule judged the probe", "err", err)
	}
	if probe.Status != 0 && probe.Expected {
		return Up, ""
	}
	return Down, ""
}

func describe(probe *wire.Probe, s State, how string) string {
	var what string
	if probe.Status == 0 {
		what = "probe failed: " + probe.Error
	} else {
		what = fmt.Sprintf("probe answered %d in %s", probe.Status, time.Duration(probe.LatencyNS).Round(time.Microsecond))
	}
	if how != "" {
		what += "; " + how + " says " + s.String()
	}
	return what
}

// probe makes one request and describes its result.
func (p *Prober) probe(ctx context.Context, addr string) *wire.Probe {
	res := &wire.Probe{Address: addr}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.cfg.Path, nil)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	req.Header.Set("User-Agent", "wproxy-health")
	start := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		res.LatencyNS = uint64(time.Since(start))
		if ctx.Err() == context.DeadlineExceeded {
			res.Error = fmt.Sprintf("no answer within %s", p.cfg.Timeout)
		} else {
			res.Error = err.Error()
		}
		return res
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(p.cfg.BodyBytes)))
	res.LatencyNS = uint64(time.Since(start))
	if err != nil && len(body) == 0 {
		res.Error = "reading the body: " + err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection can be reused
	res.Status = uint32(resp.StatusCode)
	res.Expected = slices.Contains(p.cfg.Expected, resp.StatusCode)
	res.Body = body
	for _, h := range p.cfg.Headers {
		for _, v := range resp.Header.Values(h) {
			res.Header = append(res.Header, wire.Header{Name: http.CanonicalHeaderKey(h), Value: v})
		}
	}
	return res
}
