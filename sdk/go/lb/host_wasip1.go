//go:build wasip1

package lb

import "unsafe"

//go:wasmimport wproxy_lb_v1 endpoint_inflight
func wasmEndpointInFlight(i int32) int64

//go:wasmimport wproxy_lb_v1 endpoint_stats
func wasmEndpointStats(idx unsafe.Pointer, count uint32, out unsafe.Pointer, stride uint32) int32

//go:wasmimport wproxy_lb_v1 endpoint_acquire
func wasmEndpointAcquire(i int32, limit int64) int32

//go:wasmimport wproxy_lb_v1 endpoint_latency
func wasmEndpointLatency(i int32) int64

//go:wasmimport wproxy_lb_v1 pool_inflight
func wasmPoolInFlight() int64

//go:wasmimport wproxy_lb_v1 endpoint_load
func wasmEndpointLoad(i int32) int64

//go:wasmimport wproxy_lb_v1 endpoint_load_age
func wasmEndpointLoadAge(i int32) int64

//go:wasmimport wproxy_lb_v1 endpoint_load_set
func wasmEndpointLoadSet(i int32, load int64) uint32

//go:wasmimport wproxy_lb_v1 endpoint_load_claim
func wasmEndpointLoadClaim(i int32, ttlMS int64) int32

//go:wasmimport wproxy_lb_v1 fetch_start
func wasmFetchStart(ptr unsafe.Pointer, size uint32) int64

//go:wasmimport wproxy_lb_v1 fetch_result
func wasmFetchResult(id int64, ptr unsafe.Pointer, size uint32) int64

//go:wasmimport wproxy_lb_v1 timer_set
func wasmTimerSet(delayMS int64, id uint64) uint32

//go:wasmimport wproxy_lb_v1 request_attr
func wasmRequestAttr(namePtr unsafe.Pointer, nameLen uint32, bufPtr unsafe.Pointer, bufLen uint32) int64

//go:wasmexport wproxy_on_timer
func wasmOnTimer(id uint64) {
	if h, ok := policy.(TimerHandler); ok {
		h.OnTimer(id)
	}
}

// wasmHost calls the real host.
type wasmHost struct{}

var host wasmHost

func (wasmHost) endpointInFlight(i int32) int64 { return wasmEndpointInFlight(i) }
func (wasmHost) endpointLatency(i int32) int64  { return wasmEndpointLatency(i) }

// endpointStats has the host write straight into out: Stats is four int64,
// laid out as the ABI's record.
func (wasmHost) endpointStats(idx []int32, out []Stats) int32 {
	return wasmEndpointStats(unsafe.Pointer(unsafe.SliceData(idx)), uint32(len(idx)),
		unsafe.Pointer(unsafe.SliceData(out)), uint32(unsafe.Sizeof(Stats{})))
}

func (wasmHost) endpointAcquire(i int32, limit int64) int32 {
	return wasmEndpointAcquire(i, limit)
}
func (wasmHost) poolInFlight() int64           { return wasmPoolInFlight() }
func (wasmHost) endpointLoad(i int32) int64    { return wasmEndpointLoad(i) }
func (wasmHost) endpointLoadAge(i int32) int64 { return wasmEndpointLoadAge(i) }
func (wasmHost) endpointLoadSet(i int32, load int64) uint32 {
	return wasmEndpointLoadSet(i, load)
}
func (wasmHost) endpointLoadClaim(i int32, ttlMS int64) int32 {
	return wasmEndpointLoadClaim(i, ttlMS)
}
func (wasmHost) fetchStart(buf []byte) int64 {
	return wasmFetchStart(unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf)))
}
func (wasmHost) fetchResult(id int64, buf []byte) int64 {
	return wasmFetchResult(id, unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf)))
}
func (wasmHost) timerSet(delayMS int64, id uint64) uint32 { return wasmTimerSet(delayMS, id) }
func (wasmHost) requestAttr(name string, buf []byte) int64 {
	return wasmRequestAttr(unsafe.Pointer(unsafe.StringData(name)), uint32(len(name)),
		unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf)))
}

// SetNativeHost has no effect in a module: the real host answers.
func SetNativeHost(Host) {}
