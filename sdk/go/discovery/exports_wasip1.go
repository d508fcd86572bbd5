//go:build wasip1

package discovery

import (
	"unsafe"

	"github.com/wproxy/wproxy/sdk/go/internal/guest"
)

//go:wasmexport wproxy_abi_discovery_v1
func abiMarker() {}

//go:wasmexport wproxy_discovery_init
func wasmInit(ptr unsafe.Pointer, size uint32) uint32 {
	return uint32(initSource(guest.Bytes(ptr, size)))
}

//go:wasmexport wproxy_discovery_poll
func wasmPoll() uint32 { return uint32(poll()) }
