// Package fakehost is an lb.Host for the native tests of the default
// modules: live figures and load samples set by the test, fetches answered
// by a function, timers recorded.
package fakehost

import (
	"sync"

	"github.com/wproxy/wproxy/sdk/go/lb"
)

// Host is a fake host. Its fields may be set before use; methods are safe
// for one goroutine at a time, like a module instance.
type Host struct {
	InFlight []int64
	Latency  []int64
	Loads    map[int]Sample
	// Claims records the time of each claim per endpoint; Now is the
	// clock claims and sample ages are computed with, in ns.
	Now    int64
	claims map[int]int64
	// Fetcher answers fetches; nil answers none (they stay pending).
	Fetcher func(req *lb.FetchRequest) (*lb.FetchResult, bool)
	Fetches []*lb.FetchRequest
	results map[int64]*lb.FetchRequest
	Timers  []uint64
	Attrs   map[string]string
	mu      sync.Mutex
}

// Sample is a load sample: load in millionths, taken At ns.
type Sample struct{ Load, At int64 }

var _ lb.Host = (*Host)(nil)

func (h *Host) EndpointInFlight(i int) int64 {
	if i < len(h.InFlight) {
		return h.InFlight[i]
	}
	return 0
}

func (h *Host) Stats(i int) (lb.Stats, bool) {
	st := lb.Stats{InFlight: h.EndpointInFlight(i), Latency: h.EndpointLatency(i), Load: -1, LoadAge: -1}
	if load, age, ok := h.EndpointLoad(i); ok {
		st.Load, st.LoadAge = load, age
	}
	return st, true
}

func (h *Host) AcquireEndpoint(i int, limit int64) bool {
	for len(h.InFlight) <= i {
		h.InFlight = append(h.InFlight, 0)
	}
	if h.InFlight[i] >= limit {
		return false
	}
	h.InFlight[i]++
	return true
}

func (h *Host) EndpointLatency(i int) int64 {
	if i < len(h.Latency) {
		return h.Latency[i]
	}
	return 0
}

func (h *Host) PoolInFlight() int64 {
	var n int64
	for _, v := range h.InFlight {
		n += v
	}
	return n
}

func (h *Host) EndpointLoad(i int) (int64, int64, bool) {
	s, ok := h.Loads[i]
	if !ok {
		return 0, 0, false
	}
	return s.Load, h.Now - s.At, true
}

func (h *Host) SetEndpointLoad(i int, load int64) bool {
	if h.Loads == nil {
		h.Loads = map[int]Sample{}
	}
	h.Loads[i] = Sample{Load: load, At: h.Now}
	return true
}

func (h *Host) ClaimLoadSample(i int, ttlMS int64) bool {
	if h.claims == nil {
		h.claims = map[int]int64{}
	}
	last, ok := h.claims[i]
	if ok && h.Now-last < ttlMS*1e6 {
		return false
	}
	h.claims[i] = h.Now
	return true
}

func (h *Host) Fetch(req *lb.FetchRequest) (int64, error) {
	h.Fetches = append(h.Fetches, req)
	if h.results == nil {
		h.results = map[int64]*lb.FetchRequest{}
	}
	id := int64(len(h.Fetches))
	h.results[id] = req
	return id, nil
}

func (h *Host) FetchDone(id int64) (*lb.FetchResult, bool) {
	req, ok := h.results[id]
	if !ok || h.Fetcher == nil {
		return nil, false
	}
	res, done := h.Fetcher(req)
	if done {
		delete(h.results, id)
	}
	return res, done
}

func (h *Host) SetTimer(_ int64, id uint64) bool {
	h.Timers = append(h.Timers, id)
	return true
}

func (h *Host) RequestAttr(name string) (string, bool) {
	v, ok := h.Attrs[name]
	return v, ok
}
