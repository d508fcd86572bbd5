// Package hostabi holds the public contract between wproxy and the WebAssembly
// modules it runs: the names that carry the ABI version, the exports a module
// must provide, the imports the host offers, and the error codes.
//
// The contract is specified in ABI.md beside this file; the constants here are
// the same names and numbers, for the host and for guest SDKs written in Go.
// Everything in this package is safe to use concurrently: it is constants and
// pure functions only.
//
// Versioning follows one rule: the version is in the name. A new capability is
// a new function under the same module name, never a changed signature; an
// incompatible change is a new name (wproxy_lb_v2) that a host may offer beside
// the old one.
package hostabi

// Balancing ABI, version 1.
const (
	// LBModuleV1 is the import module name of the host functions offered to
	// balancing modules.
	LBModuleV1 = "wproxy_lb_v1"

	// ExportLBMarkerV1 is the function a balancing module exports to declare
	// that it speaks version 1 of the balancing ABI. It takes and returns
	// nothing and is never called.
	ExportLBMarkerV1 = "wproxy_abi_lb_v1"

	// ExportAlloc returns a guest buffer of the requested size that the host
	// fills before a call that consumes it: (size i32) -> (ptr i32). A zero
	// pointer means the guest could not allocate.
	ExportAlloc = "wproxy_alloc"

	// ExportLBInit passes the module its configuration, once, before any
	// other call: (config_ptr i32, config_len i32) -> (errno i32).
	ExportLBInit = "wproxy_lb_init"

	// ExportLBSetEndpoints replaces the endpoint set the module balances over:
	// (version i64, set_ptr i32, set_len i32) -> (errno i32). The set is
	// encoded as described by package wire.
	ExportLBSetEndpoints = "wproxy_lb_set_endpoints"

	// ExportLBPick chooses an endpoint for one request:
	// (hash i64, seq i64, random i64, flags i32) -> (index i32).
	// The result is an index into the most recent endpoint set, PickNone when
	// no endpoint fits, or another negative value for an error.
	ExportLBPick = "wproxy_lb_pick"

	// ImportLog writes a line to the host's log:
	// (level i32, msg_ptr i32, msg_len i32) -> ().
	ImportLog = "log"

	// Live figures of the endpoints of the caller's current set, by index.
	// ImportEndpointInFlight: (index i32) -> (requests i64), the requests
	// sent to the endpoint and not finished.
	ImportEndpointInFlight = "endpoint_inflight"
	// ImportEndpointLatency: (index i32) -> (ns i64), the moving average of
	// the endpoint's time to a response header; 0 before the first.
	ImportEndpointLatency = "endpoint_latency"
	// ImportPoolInFlight: () -> (requests i64), the pool's requests in
	// flight over all endpoints.
	ImportPoolInFlight = "pool_inflight"
	// ImportEndpointStats: (idx_ptr i32, count i32, out_ptr i32,
	// stride i32) -> (size i32) reads the figures of several endpoints in
	// one call: for each of count i32 indexes at idx_ptr it writes a
	// record of StatsSize bytes (in flight, latency ns, load, load age ns:
	// four i64) at out_ptr + k × stride, and returns StatsSize.
	ImportEndpointStats = "endpoint_stats"
	// ImportEndpointAcquire: (index i32, limit i64) -> (acquired i32)
	// counts the request being picked to the endpoint if its in-flight
	// count is below limit, atomically, and returns 1; the pick must then
	// return that index. 0 when the endpoint is at the limit. For bounded
	// loads that hold under any concurrency.
	ImportEndpointAcquire = "endpoint_acquire"
	// ImportEndpointLoad: (index i32) -> (load i64), the endpoint's last
	// load sample in millionths (LoadScale is 1.0), or ResultAbsent.
	ImportEndpointLoad = "endpoint_load"
	// ImportEndpointLoadAge: (index i32) -> (ns i64), the age of that
	// sample, or ResultAbsent.
	ImportEndpointLoadAge = "endpoint_load_age"
	// ImportEndpointLoadSet: (index i32, load i64) -> (errno i32) records a
	// load sample for the endpoint, seen by every instance of the pool.
	ImportEndpointLoadSet = "endpoint_load_set"
	// ImportEndpointLoadClaim: (index i32, ttl_ms i64) -> (claimed i32)
	// returns 1 to exactly one caller per ttl per endpoint, across all the
	// pool's instances: the one that should take the next sample.
	ImportEndpointLoadClaim = "endpoint_load_claim"

	// ImportFetchStart: (req_ptr i32, req_len i32) -> (id i64) starts an
	// HTTP request (encoded as wire.FetchRequest) without waiting for it.
	ImportFetchStart = "fetch_start"
	// ImportFetchResult: (id i64, buf_ptr i32, buf_len i32) -> (size i64)
	// collects a finished fetch (encoded as wire.FetchResult).
	ImportFetchResult = "fetch_result"

	// ImportTimerSet: (delay_ms i64, id i64) -> (errno i32) asks the host
	// to call ExportOnTimer with id once, after the delay.
	ImportTimerSet = "timer_set"
	// ExportOnTimer: (id i64) -> () is called when a timer fires. A module
	// that imports timer_set must export it.
	ExportOnTimer = "wproxy_on_timer"

	// ImportRequestAttr: (name_ptr i32, name_len i32, buf_ptr i32,
	// buf_len i32) -> (len i64) reads an attribute of the request being
	// picked for ("path", "header:NAME", ...).
	ImportRequestAttr = "request_attr"
)

// StatsSize is the size of an endpoint_stats record in this version; later
// versions may append fields, and say so by returning a larger size.
const StatsSize = 32

// LoadScale is a load of 1.0 (fully loaded) in the millionths that
// endpoint_load and endpoint_load_set use.
const LoadScale = 1_000_000

// Negative results of the i64 functions above. A function documents which
// it returns.
const (
	ResultAbsent  int64 = -1 // no such value: no sample yet, attribute not in the request
	ResultInvalid int64 = -2 // an argument is wrong: index out of range, malformed buffer
	ResultPending int64 = -3 // the fetch has not finished
	ResultDenied  int64 = -4 // the fetch's destination is not allowed
	ResultBusy    int64 = -5 // too many fetches or timers are pending
	ResultUnknown int64 = -6 // no fetch has this id: never started, collected or expired
)

// Pick flags, bits of the flags argument of ExportLBPick.
const (
	// PickHashPresent is set when the pool's hash key was found in the request;
	// when clear, the hash argument is zero and carries no information.
	PickHashPresent uint32 = 1 << 0
)

// PickNone is the pick result meaning that no endpoint fits the request.
const PickNone int32 = -1

// Errno is the result code of ABI calls that return one.
type Errno uint32

// Error codes. Zero is success; the host maps any other value to an error that
// names the call and the code.
const (
	ErrnoOK          Errno = 0
	ErrnoInvalid     Errno = 1 // an argument or buffer is malformed: bad config, undecodable set
	ErrnoUnsupported Errno = 2 // the module cannot work with what it was given
	ErrnoInternal    Errno = 3 // the module failed for a reason of its own
)

// String returns the name of the code as ABI.md spells it.
func (e Errno) String() string {
	switch e {
	case ErrnoOK:
		return "ok"
	case ErrnoInvalid:
		return "invalid"
	case ErrnoUnsupported:
		return "unsupported"
	case ErrnoInternal:
		return "internal"
	}
	return "errno(" + itoa(uint32(e)) + ")"
}

// Log levels, the level argument of ImportLog.
const (
	LogDebug int32 = 0
	LogInfo  int32 = 1
	LogWarn  int32 = 2
	LogError int32 = 3
)

func itoa(v uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// Health evaluation ABI, version 1: a module that judges one probe of a
// backend.
const (
	// HealthModuleV1 is the import module name of the host functions
	// offered to health evaluators (log).
	HealthModuleV1 = "wproxy_health_v1"
	// ExportHealthMarkerV1 declares that a module speaks version 1.
	ExportHealthMarkerV1 = "wproxy_abi_health_v1"
	// ExportHealthInit passes the evaluator its configuration:
	// (config_ptr i32, config_len i32) -> (errno i32).
	ExportHealthInit = "wproxy_health_init"
	// ExportHealthEvaluate judges one probe (encoded as wire.Probe):
	// (probe_ptr i32, probe_len i32) -> (verdict i32).
	ExportHealthEvaluate = "wproxy_health_evaluate"
)

// Verdicts of wproxy_health_evaluate. Negative values are errors.
const (
	VerdictHealthy   int32 = 0 // serving normally
	VerdictDegraded  int32 = 1 // serving, but at reduced weight
	VerdictUnhealthy int32 = 2 // not to be sent requests
)

// Discovery ABI, version 1: a module that finds a pool's backends in a
// registry and hands the host the whole set.
const (
	// DiscoveryModuleV1 is the import module name of the host functions
	// offered to discovery modules (log, http, http_result, set_endpoints).
	DiscoveryModuleV1 = "wproxy_discovery_v1"
	// ExportDiscoveryMarkerV1 declares that a module speaks version 1.
	ExportDiscoveryMarkerV1 = "wproxy_abi_discovery_v1"
	// ExportDiscoveryInit passes the module its source's configuration:
	// (config_ptr i32, config_len i32) -> (errno i32).
	ExportDiscoveryInit = "wproxy_discovery_init"
	// ExportDiscoveryPoll looks at the registry and calls set_endpoints when
	// the set changed: () -> (errno i32).
	ExportDiscoveryPoll = "wproxy_discovery_poll"

	// ImportHTTP: (req_ptr i32, req_len i32) -> (size i64) makes an HTTP
	// request (encoded as wire.FetchRequest) and waits for it; the result
	// (encoded as wire.FetchResult) is kept, and its size returned.
	ImportHTTP = "http"
	// ImportHTTPResult: (buf_ptr i32, buf_len i32) -> (size i64) copies the
	// last result kept by http; when buf_len is too small, it copies nothing
	// and returns the size needed.
	ImportHTTPResult = "http_result"
	// ImportSetEndpoints: (set_ptr i32, set_len i32) -> (errno i32) hands
	// the host the whole set (encoded as by wire.AppendEndpoints).
	ImportSetEndpoints = "set_endpoints"
)
