//go:build wasip1

package guest

import "unsafe"

// buf is the one buffer the host fills. It is reachable from a global, so
// the collector keeps it; Go's collector does not move objects, so its
// address stays valid.
var buf []byte

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

// Bytes returns the host-filled bytes at ptr.
func Bytes(ptr unsafe.Pointer, size uint32) []byte {
	if size == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(ptr), size)
}
