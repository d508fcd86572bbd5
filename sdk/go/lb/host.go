package lb

import (
	"errors"

	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wire"
)

// The functions below read live figures and use the host's services. Each
// is one call into the host (about 30 ns); a policy calls them for the few
// candidates it looks at, not for every endpoint. Indexes refer to the set
// last given to SetEndpoints.

// LoadScale is a load of 1.0, fully loaded, in the millionths of
// EndpointLoad and SetEndpointLoad.
const LoadScale = hostabi.LoadScale

// EndpointInFlight returns the requests sent to endpoint i and not finished,
// across the whole proxy; -1 when i is out of range.
func EndpointInFlight(i int) int64 { return host.endpointInFlight(int32(i)) }

// EndpointLatency returns the moving average of endpoint i's time to a
// response header, in nanoseconds; 0 before its first response.
func EndpointLatency(i int) int64 { return host.endpointLatency(int32(i)) }

// Stats are the live figures of one endpoint.
type Stats struct {
	InFlight int64 // requests in flight to it
	Latency  int64 // moving average time to a response header, ns (0 unknown)
	Load     int64 // last load sample in millionths, -1 when none
	LoadAge  int64 // the sample's age in ns, -1 when none
}

// ReadStats fills out[k] with the figures of endpoint idx[k], in one call
// into the host however many endpoints (at most 64): the way to compare
// candidates. It reports false when an index is out of range.
func ReadStats(idx []int32, out []Stats) bool {
	if len(out) < len(idx) || len(idx) > 64 {
		return false
	}
	if len(idx) == 0 {
		return true
	}
	return host.endpointStats(idx, out) >= hostabi.StatsSize
}

// AcquireEndpoint counts the request being picked to endpoint i if fewer than
// limit requests are in flight to it, atomically across the whole proxy, and
// reports whether it did. After a true result Pick must return i. At most
// one acquisition per pick; use it for bounds that must hold under any
// concurrency (bounded loads).
func AcquireEndpoint(i int, limit int64) bool { return host.endpointAcquire(int32(i), limit) == 1 }

// PoolInFlight returns the requests in flight over all the pool's endpoints.
func PoolInFlight() int64 { return host.poolInFlight() }

// EndpointLoad returns endpoint i's last load sample in millionths
// (LoadScale is fully loaded) and its age in nanoseconds; ok is false when
// there is none. Samples are shared by every instance of the pool.
func EndpointLoad(i int) (load, age int64, ok bool) {
	load = host.endpointLoad(int32(i))
	if load < 0 {
		return 0, 0, false
	}
	age = host.endpointLoadAge(int32(i))
	if age < 0 {
		return 0, 0, false
	}
	return load, age, true
}

// SetEndpointLoad records a load sample for endpoint i, in millionths (0 to
// 100 × LoadScale).
func SetEndpointLoad(i int, load int64) error {
	if e := hostabi.Errno(host.endpointLoadSet(int32(i), load)); e != hostabi.ErrnoOK {
		return errors.New("endpoint_load_set: " + e.String())
	}
	return nil
}

// ClaimLoadSample returns true to exactly one caller per ttlMS milliseconds
// per endpoint, across every instance of the pool: the caller that should
// take endpoint i's next load sample.
func ClaimLoadSample(i int, ttlMS int64) bool { return host.endpointLoadClaim(int32(i), ttlMS) == 1 }

// FetchRequest is an HTTP request for Fetch. URL is absolute (http://host:port/path);
// the host allows the pool's own endpoints and the pool's fetch_allow list.
// TimeoutMS 0 means 5 s; the host caps it at 30 s.
type FetchRequest = wire.FetchRequest

// FetchResult is the outcome of a fetch: Status is 0 when the request failed
// before a response, and Error says why.
type FetchResult = wire.FetchResult

// Errors of Fetch and FetchResult.
var (
	ErrFetchDenied  = errors.New("fetch: destination not allowed")
	ErrFetchBusy    = errors.New("fetch: too many fetches pending")
	ErrFetchInvalid = errors.New("fetch: invalid request")
	ErrFetchUnknown = errors.New("fetch: unknown id")
)

// Fetch starts an HTTP request and returns at once with its id; collect it
// with FetchDone. The request runs in the host, however long it takes; a
// pick never waits for it.
func Fetch(req *FetchRequest) (int64, error) {
	buf, err := wire.AppendFetchRequest(nil, req)
	if err != nil {
		return 0, err
	}
	id := host.fetchStart(buf)
	switch id {
	case hostabi.ResultDenied:
		return 0, ErrFetchDenied
	case hostabi.ResultBusy:
		return 0, ErrFetchBusy
	}
	if id < 0 {
		return 0, ErrFetchInvalid
	}
	return id, nil
}

// fetchBuf receives results; it grows to the largest result seen.
var fetchBuf = make([]byte, 4096)

// FetchDone returns the result of fetch id once it has finished (done is
// false before), and forgets it: each result is returned once.
func FetchDone(id int64) (res *FetchResult, done bool, err error) {
	for {
		n := host.fetchResult(id, fetchBuf)
		switch {
		case n == hostabi.ResultPending:
			return nil, false, nil
		case n == hostabi.ResultUnknown:
			return nil, false, ErrFetchUnknown
		case n < 0:
			return nil, false, ErrFetchInvalid
		case int(n) > len(fetchBuf):
			fetchBuf = make([]byte, n)
			continue
		}
		r, err := wire.DecodeFetchResult(fetchBuf[:n])
		return r, err == nil, err
	}
}

// TimerHandler is implemented by a Policy that sets timers.
type TimerHandler interface {
	// OnTimer is called once for each SetTimer, on any instance of the
	// pool's module, never during another call into the same instance.
	OnTimer(id uint64)
}

// SetTimer asks the host to call the policy's OnTimer with id once, after
// delayMS milliseconds.
func SetTimer(delayMS int64, id uint64) error {
	if e := hostabi.Errno(host.timerSet(delayMS, id)); e != hostabi.ErrnoOK {
		return errors.New("timer_set: " + e.String())
	}
	return nil
}

// attrBuf receives request attributes.
var attrBuf = make([]byte, 256)

// RequestAttr returns an attribute of the request being picked for: "method",
// "path", "query", "host", "client_ip", "header:NAME", "cookie:NAME" or
// "query:NAME". Call it only from Pick; ok is false when the request lacks it.
func RequestAttr(name string) (string, bool) {
	for {
		n := host.requestAttr(name, attrBuf)
		switch {
		case n < 0:
			return "", false
		case int(n) > len(attrBuf):
			attrBuf = make([]byte, n)
			continue
		}
		return string(attrBuf[:n]), true
	}
}

// Host is the host's side of the calls above, as a policy's native tests
// provide it with SetNativeHost. In a module built for wproxy the real host
// answers and SetNativeHost has no effect.
type Host interface {
	EndpointInFlight(i int) int64
	Stats(i int) (Stats, bool)
	AcquireEndpoint(i int, limit int64) bool
	EndpointLatency(i int) int64
	PoolInFlight() int64
	// EndpointLoad returns a sample in millionths and its age in ns, or
	// ok false.
	EndpointLoad(i int) (load, age int64, ok bool)
	SetEndpointLoad(i int, load int64) bool
	ClaimLoadSample(i int, ttlMS int64) bool
	Fetch(req *FetchRequest) (id int64, err error)
	FetchDone(id int64) (res *FetchResult, done bool)
	SetTimer(delayMS int64, id uint64) bool
	RequestAttr(name string) (string, bool)
}
