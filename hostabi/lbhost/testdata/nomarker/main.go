// Command nomarker exports every balancing function but the ABI marker.
package main

import "unsafe"

var buf [64]byte

//go:wasmexport wproxy_alloc
func alloc(size uint32) unsafe.Pointer { return unsafe.Pointer(&buf[0]) }

//go:wasmexport wproxy_lb_init
func initialize(ptr unsafe.Pointer, size uint32) uint32 { return 0 }

//go:wasmexport wproxy_lb_set_endpoints
func setEndpoints(version uint64, ptr unsafe.Pointer, size uint32) uint32 { return 0 }

//go:wasmexport wproxy_lb_pick
func pick(hash, seq, random uint64, flags uint32) int32 { return 0 }

func main() {}
