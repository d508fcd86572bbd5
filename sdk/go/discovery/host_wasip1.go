//go:build wasip1

package discovery

import "unsafe"

//go:wasmimport wproxy_discovery_v1 log
func wasmLog(level int32, ptr unsafe.Pointer, size uint32)

//go:wasmimport wproxy_discovery_v1 http
func wasmHTTP(ptr unsafe.Pointer, size uint32) int64

//go:wasmimport wproxy_discovery_v1 http_result
func wasmHTTPResult(ptr unsafe.Pointer, size uint32) int64

//go:wasmimport wproxy_discovery_v1 set_endpoints
func wasmSetEndpoints(ptr unsafe.Pointer, size uint32) uint32

func hostLog(level Level, msg string) {
	wasmLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

// wasmHost calls the real host.
type wasmHost struct{}

var host wasmHost

func (wasmHost) http(req []byte) int64 {
	return wasmHTTP(unsafe.Pointer(unsafe.SliceData(req)), uint32(len(req)))
}

func (wasmHost) httpResult(buf []byte) int64 {
	return wasmHTTPResult(unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf)))
}

func (wasmHost) setEndpoints(set []byte) uint32 {
	return wasmSetEndpoints(unsafe.Pointer(unsafe.SliceData(set)), uint32(len(set)))
}

// SetNativeHost has no effect in a module: the real host answers.
func SetNativeHost(Host) {}
