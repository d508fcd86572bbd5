// Command notimer imports timer_set without exporting wproxy_on_timer (it
// does not use the SDK, which exports it).
package main

import "unsafe"

var buf [64]byte

//go:wasmimport wproxy_lb_v1 timer_set
func timerSet(delayMS int64, id uint64) uint32

//go:wasmexport wproxy_abi_lb_v1
func marker() {}

//go:wasmexport wproxy_alloc
func alloc(size uint32) unsafe.Pointer { return unsafe.Pointer(&buf[0]) }

//go:wasmexport wproxy_lb_init
func initialize(ptr unsafe.Pointer, size uint32) uint32 { return timerSet(10, 1) }

//go:wasmexport wproxy_lb_set_endpoints
func setEndpoints(version uint64, ptr unsafe.Pointer, size uint32) uint32 { return 0 }

//go:wasmexport wproxy_lb_pick
func pick(hash, seq, random uint64, flags uint32) int32 { return 0 }

func main() {}
