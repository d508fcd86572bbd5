package backendkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Defaults of HealthConfig.
const (
	DefaultMaxCPU       = 0.95
	DefaultMaxMemory    = 0.90
	DefaultCheckTimeout = 5 * time.Second
)

// HealthConfig configures a health handler. The zero value is ready to use.
type HealthConfig struct {
	// MaxCPU is the highest healthy Figures.CPU. Default: 0.95; 1 or more
	// never trips (CPU is at most 1).
	MaxCPU float64
	// MaxMemory is the highest healthy Figures.Memory. Default: 0.90.
	MaxMemory float64
	// MaxInFlight is the most requests in flight that are healthy.
	// Default: 0, no limit.
	MaxInFlight int64
	// Checks are further tests by name, run concurrently on each health
	// request; an error makes the process unhealthy. Each gets a context
	// that ends with the request or after CheckTimeout, and must return
	// soon after it ends (the answer does not wait longer, but the check's
	// goroutine lives on until it returns). A check that panics fails.
	Checks map[string]func(context.Context) error
	// CheckTimeout bounds each check. Default: 5 s.
	CheckTimeout time.Duration
}

// Validate reports every problem of c at once, or nil.
func (c *HealthConfig) Validate() error {
	var errs []error
	if !(c.MaxCPU >= 0) {
		errs = append(errs, fmt.Errorf("max cpu: %v is not a number of at least 0", c.MaxCPU))
	}
	if !(c.MaxMemory >= 0) {
		errs = append(errs, fmt.Errorf("max memory: %v is not a number of at least 0", c.MaxMemory))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("max in flight: %d is negative", c.MaxInFlight))
	}
	if c.CheckTimeout < 0 {
		errs = append(errs, fmt.Errorf("check timeout: %v is negative", c.CheckTimeout))
	}
	for name, f := range c.Checks {
		if f == nil {
			errs = append(errs, fmt.Errorf("checks[%q]: nil function", name))
		}
	}
	return errors.Join(errs...)
}

// LoadConfig configures a load handler. The zero value is ready to use.
type LoadConfig struct {
	// MaxInFlight is the number of requests in flight that counts as a load
	// of 1. Default: 0, requests in flight do not count.
	MaxInFlight int64
}

// Validate reports every problem of c, or nil.
func (c *LoadConfig) Validate() error {
	if c.MaxInFlight < 0 {
		return fmt.Errorf("max in flight: %d is negative", c.MaxInFlight)
	}
	return nil
}

// healthBody is the health handler's answer.
type healthBody struct {
	Status   string   `json:"status"`
	Reasons  []string `json:"reasons,omitempty"`
	CPU      float64  `json:"cpu"`
	Mem      float64  `json:"mem"`
	InFlight int64    `json:"inflight"`
}

// loadBody is the load handler's answer.
type loadBody struct {
	Load     float64 `json:"load"`
	CPU      float64 `json:"cpu"`
	Mem      float64 `json:"mem"`
	InFlight int64   `json:"inflight"`
}

// HealthHandler returns a handler that compares s's Figures and the results
// of cfg.Checks with cfg's thresholds. It answers GET and HEAD with 200 and
//
//	{"status":"ok","cpu":0.12,"mem":0.3,"inflight":3}
//
// when all is well, or with 503 and
//
//	{"status":"unhealthy","reasons":["cpu 0.97 above 0.95","check db: connection refused"],"cpu":0.97,"mem":0.3,"inflight":3}
//
// when not, as application/json; other methods get 405. A figure is
// unhealthy when strictly above its threshold. Figures are rounded to four
// decimal places; the request itself is not counted in flight if s.Track
// counts it. The handler is safe for concurrent use.
//
// HealthHandler panics if cfg is invalid (see Validate), as a programmer's
// error at set-up.
func (s *Sampler) HealthHandler(cfg HealthConfig) http.Handler {
	if err := cfg.Validate(); err != nil {
		panic("backendkit: health handler: " + err.Error())
	}
	if cfg.MaxCPU == 0 {
		cfg.MaxCPU = DefaultMaxCPU
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = DefaultMaxMemory
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	names := make([]string, 0, len(cfg.Checks))
	for name := range cfg.Checks {
		names = append(names, name)
	}
	slices.Sort(names)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowRead(w, r) {
			return
		}
		f := s.read(s.selfCount(r))
		reasons := thresholdReasons(f, &cfg)
		reasons = append(reasons, runChecks(r.Context(), names, cfg.Checks, cfg.CheckTimeout)...)
		body := healthBody{Status: "ok", Reasons: reasons, CPU: round4(f.CPU), Mem: round4(f.Memory), InFlight: f.InFlight}
		code := http.StatusOK
		if len(reasons) > 0 {
			body.Status, code = "unhealthy", http.StatusServiceUnavailable
		}
		writeJSON(w, r, code, body)
	})
}

// LoadHandler returns a handler for wproxy's load_aware balancing policy. It
// answers GET and HEAD with 200 and
//
//	{"load":0.42,"cpu":0.42,"mem":0.31,"inflight":12}
//
// as application/json, where load is the largest of cpu, mem and, if
// cfg.MaxInFlight is set, inflight / MaxInFlight, kept within 0 to 100 (0
// idle, 1 fully loaded, above 1 overloaded). Other methods get 405. Figures
// are rounded to four decimal places; the request itself is not counted in
// flight if s.Track counts it. The handler is safe for concurrent use.
//
// LoadHandler panics if cfg is invalid (see Validate), as a programmer's
// error at set-up.
func (s *Sampler) LoadHandler(cfg LoadConfig) http.Handler {
	if err := cfg.Validate(); err != nil {
		panic("backendkit: load handler: " + err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowRead(w, r) {
			return
		}
		f := s.read(s.selfCount(r))
		writeJSON(w, r, http.StatusOK, loadBody{
			Load:     round4(load(f, cfg.MaxInFlight)),
			CPU:      round4(f.CPU),
			Mem:      round4(f.Memory),
			InFlight: f.InFlight,
		})
	})
}

// load is the largest of f's CPU, memory and, if maxInFlight > 0, in
// flight / maxInFlight, within 0 to 100.
func load(f Figures, maxInFlight int64) float64 {
	l := max(f.CPU, f.Memory)
	if maxInFlight > 0 {
		l = max(l, float64(f.InFlight)/float64(maxInFlight))
	}
	if !(l >= 0) { // also NaN
		return 0
	}
	return min(l, 100)
}

// thresholdReasons returns why f is unhealthy under cfg's thresholds.
func thresholdReasons(f Figures, cfg *HealthConfig) []string {
	var reasons []string
	if f.CPU > cfg.MaxCPU {
		reasons = append(reasons, "cpu "+formatPast(f.CPU, cfg.MaxCPU)+" above "+formatFloat(cfg.MaxCPU))
	}
	if f.Memory > cfg.MaxMemory {
		reasons = append(reasons, "mem "+formatPast(f.Memory, cfg.MaxMemory)+" above "+formatFloat(cfg.MaxMemory))
	}
	if cfg.MaxInFlight > 0 && f.InFlight > cfg.MaxInFlight {
		reasons = append(reasons, fmt.Sprintf("inflight %d above %d", f.InFlight, cfg.MaxInFlight))
	}
	return reasons
}

// runChecks runs the named checks concurrently and returns the failures in
// the order of names. It waits at most timeout.
func runChecks(ctx context.Context, names []string, checks map[string]func(context.Context) error, timeout time.Duration) []string {
	if len(names) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(names)) // never blocks a late check
	for i, name := range names {
		go func() {
			defer func() {
				if p := recover(); p != nil {
					results <- result{i, fmt.Errorf("panic: %v", p)}
				}
			}()
			results <- result{i, checks[name](ctx)}
		}()
	}
	errs := make([]error, len(names))
	pending := len(names)
wait:
	for pending > 0 {
		select {
		case res := <-results:
			errs[res.i] = res.err
			if res.err == nil {
				errs[res.i] = errPassed
			}
			pending--
		case <-ctx.Done():
			break wait
		}
	}
	var reasons []string
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	for i, name := range names {
		switch err := errs[i]; {
		case err == nil, timedOut && errors.Is(err, context.DeadlineExceeded):
			// Whether a check that honours its context answers before
			// the wait ends is a race: report both alike.
			reasons = append(reasons, "check "+name+": timed out after "+timeout.String())
		case err != errPassed:
			reasons = append(reasons, "check "+name+": "+err.Error())
		}
	}
	return reasons
}

// errPassed marks a check that returned nil.
var errPassed = errors.New("passed")

// allowRead answers 405 to methods other than GET and HEAD and reports
// whether the request may go on.
func allowRead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// writeJSON answers code with v as JSON, with its header alone for HEAD.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs of numbers and strings come here
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// round4 rounds v to four decimal places, and NaN and infinities to 0 (JSON
// has none of them).
func round4(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1e4) / 1e4
}

// formatFloat formats v in as few digits as it takes.
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// formatPast formats v, a value past threshold, with two decimal places, or
// more if it takes more to tell them apart ("0.9501 above 0.95").
func formatPast(v, threshold float64) string {
	for p := 2; p <= 6; p++ {
		s := strconv.FormatFloat(v, 'f', p, 64)
		if s != strconv.FormatFloat(threshold, 'f', p, 64) {
			return s
		}
	}
	return formatFloat(v)
}
