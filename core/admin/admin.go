// Package admin is wproxy's admin API: a separate listener (loopback unless
// configured otherwise, and then only with a bearer token) answering JSON.
// GET /pools shows every pool's members with their health, weights,
// requests in flight and observed availability, the pool's theoretical
// availability 1 − Π(1 − aᵢ), and whether it is in panic mode; GET /config
// the configuration in force without its secrets; GET /modules the modules
// loaded; GET /metrics the Prometheus metrics. POST /reload reloads the
// configuration file (422 with the reason when it is rejected). GET
// /healthz answers 200 while wproxy serves.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/wproxy/wproxy/core/balancer"
	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/discovery"
	"github.com/wproxy/wproxy/core/health"
)

// Source gives the admin API what it shows and does.
type Source interface {
	// Pools returns the pools by name.
	Pools() map[string]*balancer.Pool
	// Config returns the configuration being served.
	Config() *config.Config
	// Modules describes the modules loaded.
	Modules() []Module
	// Metrics serves /metrics.
	Metrics() http.Handler
	// ReloadFile reads the configuration file again and reloads it, or
	// changes nothing and says why.
	ReloadFile(ctx context.Context) error
	// Discovery returns the status of every pool's discovery sources, by
	// pool.
	Discovery() map[string][]discovery.Status
}

// Module is one module in GET /modules.
type Module struct {
	// Name is the module's source: a built-in name or its file's path.
	Name string `json:"name"`
	// Kind is "balancer" or "health".
	Kind string `json:"kind"`
	// ABI is the ABI version the module speaks, such as wproxy_lb_v1.
	ABI string `json:"abi"`
	// Digest is the hex SHA-256 of the module's bytes.
	Digest string `json:"digest"`
	// Pool is the pool that runs it.
	Pool string `json:"pool"`
	// Instances is how many instances are alive now.
	Instances int `json:"instances"`
	// Calls and Failures count its calls and the calls that failed.
	Calls    uint64 `json:"calls"`
	Failures uint64 `json:"failures"`
}

// Handler serves the admin API for src. When the configuration in force has
// an admin token, every request but GET /healthz must carry it.
func Handler(src Source, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pools", func(w http.ResponseWriter, r *http.Request) {
		pools := PoolsStatus(src.Pools(), time.Now())
		disc := src.Discovery()
		for i := range pools {
			pools[i].Discovery = disc[pools[i].Name]
		}
		writeJSON(w, pools)
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, EffectiveConfig(src.Config()))
	})
	mux.HandleFunc("GET /modules", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, src.Modules())
	})
	mux.Handle("GET /metrics", src.Metrics())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		// A client that hangs up does not cancel a reload half-way.
		if err := src.ReloadFile(context.WithoutCancel(r.Context())); err != nil {
			writeJSONStatus(w, http.StatusUnprocessableEntity, map[string]any{"status": "rejected", "error": err.Error()})
			return
		}
		writeJSON(w, map[string]any{"status": "reloaded"})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := src.Config().Admin.Token
		if token != "" && !(r.Method == http.MethodGet && r.URL.Path == "/healthz") && !authorized(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wproxy admin"`)
			writeJSONStatus(w, http.StatusUnauthorized, map[string]any{"error": "this admin API needs Authorization: Bearer TOKEN with the admin.token of the configuration"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// authorized reports whether r carries token as its bearer token; the
// comparison takes the same time whatever the mismatch.
func authorized(r *http.Request, token string) bool {
	auth := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	a, b := sha256.Sum256([]byte(auth[len(prefix):])), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// PoolStatus is one pool in GET /pools.
type PoolStatus struct {
	Name   string `json:"name"`
	Policy string `json:"policy"`
	// Panic reports panic mode: too few members looked healthy, so every
	// member gets traffic.
	Panic bool `json:"panic"`
	// Availability is the pool's theoretical availability from its
	// members' observed availability, 1 − Π(1 − aᵢ).
	Availability float64        `json:"availability"`
	InFlight     int64          `json:"in_flight"`
	Members      []MemberStatus `json:"members"`
	// Discovery is the status of the pool's discovery sources.
	Discovery []discovery.Status `json:"discovery,omitempty"`
}

// MemberStatus is one backend of a pool.
type MemberStatus struct {
	Address string `json:"address"`
	Weight  uint32 `json:"weight"`
	// Balanced reports whether the policy currently balances over it.
	Balanced bool   `json:"balanced"`
	Health   string `json:"health"` // up, degraded, down (active checks)
	// EjectedUntil is set while passive checks keep it out.
	EjectedUntil string  `json:"ejected_until,omitempty"`
	Cause        string  `json:"cause,omitempty"`
	InFlight     int64   `json:"in_flight"`
	Requests     uint64  `json:"requests"`
	LatencyMS    float64 `json:"latency_ms"`
	// Availability is the share of good outcomes (probes and requests)
	// over the last five minutes; 1 when there were none.
	Availability float64 `json:"availability"`
}

// PoolsStatus describes pools at now, sorted by name.
func PoolsStatus(pools map[string]*balancer.Pool, now time.Time) []PoolStatus {
	names := make([]string, 0, len(pools))
	for n := range pools {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]PoolStatus, 0, len(pools))
	for _, n := range names {
		p := pools[n]
		balanced := map[*balancer.Backend]bool{}
		for _, b := range p.Backends() {
			balanced[b] = true
		}
		ps := PoolStatus{Name: n, Policy: p.Module().Source, Panic: p.InPanic(), InFlight: p.InFlight()}
		var avail []float64
		for _, b := range p.Members() {
			st := b.HealthStatus()
			a, _ := st.Availability(now)
			avail = append(avail, a)
			ms := MemberStatus{
				Address: b.Address, Weight: b.Weight, Balanced: balanced[b], Health: st.State().String(),
				Cause: st.Cause(), InFlight: b.InFlight(), Requests: b.Requests(),
				LatencyMS: float64(b.LatencyEWMA()) / 1e6, Availability: a,
			}
			if st.Ejected(now) {
				ms.EjectedUntil = st.EjectedUntil().UTC().Format(time.RFC3339Nano)
			}
			ps.Members = append(ps.Members, ms)
		}
		ps.Availability = health.PoolAvailability(avail)
		out = append(out, ps)
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
