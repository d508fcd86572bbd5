//go:build wasip1

package lb

import (
	"unsafe"

	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/sdk/go/internal/guest"
)

//go:wasmexport wproxy_abi_lb_v1
func abiMarker() {}

//go:wasmexport wproxy_lb_init
func wasmInit(ptr unsafe.Pointer, size uint32) uint32 {
	return uint32(initPolicy(guestBytes(ptr, size)))
}

//go:wasmexport wproxy_lb_set_endpoints
func wasmSetEndpoints(version uint64, ptr unsafe.Pointer, size uint32) uint32 {
	return uint32(setEndpoints(version, guestBytes(ptr, size)))
}

// wasmPick repeats pick's body rather than calling it: every Go call costs
// in a Wasm guest, and this one runs on every request.
//
//go:wasmexport wproxy_lb_pick
func wasmPick(hash, seq, random uint64, flags uint32) int32 {
	if policy == nil {
		return pickError
	}
	return int32(policy.Pick(Request{Hash: hash, HashPresent: flags&hostabi.PickHashPresent != 0, Seq: seq, Random: random}))
}

//go:wasmimport wproxy_lb_v1 log
func wasmLog(level int32, ptr unsafe.Pointer, size uint32)

func hostLog(level Level, msg string) {
	wasmLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

func guestBytes(ptr unsafe.Pointer, size uint32) []byte { return guest.Bytes(ptr, size) }
