//go:build wasip1

package lb

import (
	"unsafe"

	"github.com/wproxy/wproxy/hostabi"
)

// buf is the one buffer the host fills before init and set_endpoints. It is
// reachable from a global, so the collector keeps it; Go's collector does not
// move objects, so its address stays valid.
var buf []byte

//go:wasmexport wproxy_abi_lb_v1
func abiMarker() {}

//go:wasmexport wproxy_alloc
func alloc(size uint32) unsafe.Pointer {
	if size == 0 {
		size = 1
	}
	if uint32(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	return unsafe.Pointer(&buf[0])
}

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

// guestBytes returns the host-filled bytes at ptr, which must lie in buf.
func guestBytes(ptr unsafe.Pointer, size uint32) []byte {
	if size == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(ptr), size)
}
