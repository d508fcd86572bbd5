//go:build !wasip1

package lb

import (
	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wire"
)

// nativeHost adapts a test's Host to the calls the SDK makes.
type nativeHost struct{ h Host }

var host = nativeHost{}

// SetNativeHost installs the host that answers the SDK's host calls when a
// policy runs natively, in its own tests. Without one, figures are zero and
// services fail.
func SetNativeHost(h Host) { host.h = h }

func (n nativeHost) endpointInFlight(i int32) int64 {
	if n.h == nil {
		return 0
	}
	return n.h.EndpointInFlight(int(i))
}

func (n nativeHost) endpointStats(idx []int32, out []Stats) int32 {
	if n.h == nil {
		for k := range idx {
			out[k] = Stats{Load: -1, LoadAge: -1}
		}
		return hostabi.StatsSize
	}
	for k, i := range idx {
		st, ok := n.h.Stats(int(i))
		if !ok {
			return -2
		}
		out[k] = st
	}
	return hostabi.StatsSize
}

func (n nativeHost) endpointAcquire(i int32, limit int64) int32 {
	if n.h != nil && n.h.AcquireEndpoint(int(i), limit) {
		return 1
	}
	return 0
}

func (n nativeHost) endpointLatency(i int32) int64 {
	if n.h == nil {
		return 0
	}
	return n.h.EndpointLatency(int(i))
}

func (n nativeHost) poolInFlight() int64 {
	if n.h == nil {
		return 0
	}
	return n.h.PoolInFlight()
}

func (n nativeHost) endpointLoad(i int32) int64 {
	if n.h == nil {
		return hostabi.ResultAbsent
	}
	load, _, ok := n.h.EndpointLoad(int(i))
	if !ok {
		return hostabi.ResultAbsent
	}
	return load
}

func (n nativeHost) endpointLoadAge(i int32) int64 {
	if n.h == nil {
		return hostabi.ResultAbsent
	}
	_, age, ok := n.h.EndpointLoad(int(i))
	if !ok {
		return hostabi.ResultAbsent
	}
	return age
}

func (n nativeHost) endpointLoadSet(i int32, load int64) uint32 {
	if n.h == nil || !n.h.SetEndpointLoad(int(i), load) {
		return uint32(hostabi.ErrnoInvalid)
	}
	return 0
}

func (n nativeHost) endpointLoadClaim(i int32, ttlMS int64) int32 {
	if n.h != nil && n.h.ClaimLoadSample(int(i), ttlMS) {
		return 1
	}
	return 0
}

func (n nativeHost) fetchStart(buf []byte) int64 {
	if n.h == nil {
		return hostabi.ResultDenied
	}
	req, err := wire.DecodeFetchRequest(buf)
	if err != nil {
		return hostabi.ResultInvalid
	}
	id, err := n.h.Fetch(req)
	switch err {
	case nil:
		return id
	case ErrFetchDenied:
		return hostabi.ResultDenied
	case ErrFetchBusy:
		return hostabi.ResultBusy
	}
	return hostabi.ResultInvalid
}

func (n nativeHost) fetchResult(id int64, buf []byte) int64 {
	if n.h == nil {
		return hostabi.ResultUnknown
	}
	res, done := n.h.FetchDone(id)
	if !done {
		return hostabi.ResultPending
	}
	enc, err := wire.AppendFetchResult(nil, res)
	if err != nil {
		return hostabi.ResultInvalid
	}
	if len(enc) > len(buf) {
		return int64(len(enc)) // a real host keeps the result; this one is asked again
	}
	return int64(copy(buf, enc))
}

func (n nativeHost) timerSet(delayMS int64, id uint64) uint32 {
	if n.h == nil || !n.h.SetTimer(delayMS, id) {
		return uint32(hostabi.ErrnoUnsupported)
	}
	return 0
}

func (n nativeHost) requestAttr(name string, buf []byte) int64 {
	if n.h == nil {
		return hostabi.ResultAbsent
	}
	v, ok := n.h.RequestAttr(name)
	if !ok {
		return hostabi.ResultAbsent
	}
	if len(v) <= len(buf) {
		copy(buf, v)
	}
	return int64(len(v))
}
