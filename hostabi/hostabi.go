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
