//go:build wasip1

package health

import (
	"unsafe"

	"github.com/wproxy/wproxy/sdk/go/internal/guest"
)

//go:wasmexport wproxy_abi_health_v1
func abiMarker() {}

//go:wasmexport wproxy_health_init
func wasmInit(ptr unsafe.Pointer, size uint32) uint32 {
	return uint32(initEvaluator(guest.Bytes(ptr, size)))
}

//go:wasmexport wproxy_health_evaluate
func wasmEvaluate(ptr unsafe.Pointer, size uint32) int32 {
	return evaluate(guest.Bytes(ptr, size))
}

//go:wasmimport wproxy_health_v1 log
func wasmLog(level int32, ptr unsafe.Pointer, size uint32)

func hostLog(level int32, msg string) {
	wasmLog(level, unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}
