// Package admin is wproxy's admin API: a separate listener (loopback by
// default) with JSON status. GET /pools shows every pool's members with
// their health, weights, requests in flight and observed availability, the
// pool's theoretical availability 1 − Π(1 − aᵢ), and whether it is in panic
// mode. POST /reload reloads the configuration file (422 with the reason
// when it is rejected). GET /healthz answers 200 while wproxy serves.
package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"time"

	"github.com/wproxy/wproxy/core/balancer"
	"github.com/wproxy/wproxy/core/health"
)

// Source gives the admin API what it shows and does.
type Source interface {
	// Pools returns the pools by name.
	Pools() map[string]*balancer.Pool
	// ReloadFile reads the configuration file again and reloads it, or
	// changes nothing and says why.
	ReloadFile(ctx context.Context) error
}

// Handler serves the admin API for src.
func Handler(src Source, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pools", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, PoolsStatus(src.Pools(), time.Now()))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		if err := src.ReloadFile(context.WithoutCancel(r.Context())); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			json.NewEncoder(w).Encode(map[string]any{"status": "rejected", "error": err.Error()})
			return
		}
		writeJSON(w, map[string]any{"status": "reloaded"})
	})
	return mux
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

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
