package lbhost

import (
	"context"
	"encoding/binary"
	"math"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wasmhost"
)

// Endpoint is what the host side needs of each item of a set to answer the
// live-figure functions. The proxy's backends implement it; all methods are
// called concurrently.
type Endpoint interface {
	// InFlight returns the requests sent to the endpoint and not finished.
	InFlight() int64
	// LatencyEWMA returns the moving average of the time to a response
	// header, in nanoseconds; 0 before the first response.
	LatencyEWMA() int64
	// Load returns the last load sample (in millionths) and when it was
	// taken (Clock nanoseconds); ok is false before the first.
	Load() (load, at int64, ok bool)
	// SetLoad records a load sample taken at now (Clock nanoseconds).
	SetLoad(load, now int64)
	// ClaimLoadSample reports true to one caller per ttl (nanoseconds).
	ClaimLoadSample(now, ttl int64) bool
	// Addr returns host:port.
	Addr() string
	// Figures returns, in one call, what endpoint_stats reports: requests
	// in flight, latency (ns), the load sample and its age at now (
	// Clock ns), the last two ResultAbsent without a sample.
	Figures(now int64) (inflight, latency, load, loadAge int64)
	// TryAcquire counts one more request in flight if fewer than limit
	// are, atomically, and reports whether it did.
	TryAcquire(limit int64) bool
	// Release undoes a TryAcquire whose request was not sent.
	Release()
}

// Attrs gives a module the attributes of the request it picks for.
type Attrs interface {
	// Attr returns the named attribute: "method", "path", "query", "host",
	// "client_ip", "header:NAME", "cookie:NAME" or "query:NAME".
	Attr(name string) (string, bool)
}

var epoch = time.Now()

// Clock returns monotonic nanoseconds since the process started, plus one
// (so that 0 can mean "never"): the clock of load samples and claims. It
// reads one clock where time.Now reads two, which matters on the
// endpoint_stats path.
func Clock() int64 { return int64(time.Since(epoch)) + 1 }

// ClockAt converts a time read earlier to Clock nanoseconds, without reading
// the clock again (it uses t's monotonic reading).
func ClockAt(t time.Time) int64 { return int64(t.Sub(epoch)) + 1 }

// view is what host functions see of the instance calling them: its current
// endpoints and, during a pick, the request's attributes.
type view struct {
	items    []Endpoint
	attrs    Attrs
	core     *core
	inPick   bool
	acquired int32 // the endpoint endpoint_acquire counted during this pick, or -1
	now      int64 // during a pick, the request's time (Clock); host functions use it
}

// clock returns the pick's time during a pick, and reads the clock outside
// one: a clock reading costs 60 to 100 ns on a virtual machine, as much as
// the rest of a host call.
func (v *view) clock() int64 {
	if v.inPick && v.now > 0 {
		return v.now
	}
	return Clock()
}

func viewOf(ctx context.Context) *view {
	inst := wasmhost.FromContext(ctx)
	if inst == nil {
		return nil
	}
	v, _ := inst.Data.(*view)
	return v
}

func (v *view) item(stack []uint64) (Endpoint, bool) {
	i := int32(stack[0])
	if v == nil || i < 0 || int(i) >= len(v.items) {
		return nil, false
	}
	return v.items[i], true
}

type hostFunc struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      api.GoModuleFunc
}

// hostFuncs are the functions of wproxy_lb_v1.
var hostFuncs = []hostFunc{
	{hostabi.ImportLog, []api.ValueType{i32, i32, i32}, nil, wasmhost.HostLog},
	{hostabi.ImportEndpointInFlight, []api.ValueType{i32}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, stack []uint64) {
		if ep, ok := viewOf(ctx).item(stack); ok {
			stack[0] = uint64(ep.InFlight())
		} else {
			stack[0] = res(hostabi.ResultInvalid)
		}
	}},
	{hostabi.ImportEndpointStats, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, hostEndpointStats},
	{hostabi.ImportEndpointLatency, []api.ValueType{i32}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, stack []uint64) {
		if ep, ok := viewOf(ctx).item(stack); ok {
			stack[0] = uint64(ep.LatencyEWMA())
		} else {
			stack[0] = res(hostabi.ResultInvalid)
		}
	}},
	{hostabi.ImportEndpointAcquire, []api.ValueType{i32, i64}, []api.ValueType{i32}, func(ctx context.Context, _ api.Module, stack []uint64) {
		v := viewOf(ctx)
		ep, ok := v.item(stack)
		if !ok || !v.inPick || v.acquired >= 0 {
			// Out of range, outside a pick, or a second acquisition.
			stack[0] = uint64(uint32(0xffffffff)) // -1 as i32
			return
		}
		if ep.TryAcquire(int64(stack[1])) {
			v.acquired = int32(stack[0])
			stack[0] = 1
		} else {
			stack[0] = 0
		}
	}},
	{hostabi.ImportPoolInFlight, nil, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, stack []uint64) {
		v := viewOf(ctx)
		if v == nil || v.core.poolInFlight == nil {
			stack[0] = 0
			return
		}
		stack[0] = uint64(v.core.poolInFlight())
	}},
	{hostabi.ImportEndpointLoad, []api.ValueType{i32}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, stack []uint64) {
		ep, ok := viewOf(ctx).item(stack)
		if !ok {
			stack[0] = res(hostabi.ResultInvalid)
			return
		}
		if load, _, ok := ep.Load(); ok {
			stack[0] = uint64(load)
		} else {
			stack[0] = res(hostabi.ResultAbsent)
		}
	}},
	{hostabi.ImportEndpointLoadAge, []api.ValueType{i32}, []api.ValueType{i64}, func(ctx context.Context, _ api.Module, stack []uint64) {
		ep, ok := viewOf(ctx).item(stack)
		if !ok {
			stack[0] = res(hostabi.ResultInvalid)
			return
		}
		if _, at, ok := ep.Load(); ok {
			stack[0] = uint64(max(viewOf(ctx).clock()-at, 0))
		} else {
			stack[0] = res(hostabi.ResultAbsent)
		}
	}},
	{hostabi.ImportEndpointLoadSet, []api.ValueType{i32, i64}, []api.ValueType{i32}, func(ctx context.Context, _ api.Module, stack []uint64) {
		ep, ok := viewOf(ctx).item(stack)
		load := int64(stack[1])
		if !ok || load < 0 || load > 100*hostabi.LoadScale {
			stack[0] = uint64(hostabi.ErrnoInvalid)
			return
		}
		ep.SetLoad(load, Clock())
		stack[0] = uint64(hostabi.ErrnoOK)
	}},
	{hostabi.ImportEndpointLoadClaim, []api.ValueType{i32, i64}, []api.ValueType{i32}, func(ctx context.Context, _ api.Module, stack []uint64) {
		ep, ok := viewOf(ctx).item(stack)
		ttl := int64(stack[1])
		if !ok || ttl <= 0 {
			stack[0] = uint64(uint32(0xffffffff)) // -1 as i32
			return
		}
		if ep.ClaimLoadSample(viewOf(ctx).clock(), msToNs(ttl)) {
			stack[0] = 1
		} else {
			stack[0] = 0
		}
	}},
	{hostabi.ImportFetchStart, []api.ValueType{i32, i32}, []api.ValueType{i64}, hostFetchStart},
	{hostabi.ImportFetchResult, []api.ValueType{i64, i32, i32}, []api.ValueType{i64}, hostFetchResult},
	{hostabi.ImportTimerSet, []api.ValueType{i64, i64}, []api.ValueType{i32}, hostTimerSet},
	{hostabi.ImportRequestAttr, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i64}, hostRequestAttr},
}

func defineHost(b wazero.HostModuleBuilder) wazero.HostModuleBuilder {
	for _, f := range hostFuncs {
		b = b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.params, f.results).Export(f.name)
	}
	return b
}

// hostRequestAttr copies the named attribute of the current request into the
// guest's buffer and returns its length (the full length when the buffer is
// too small, writing nothing), ResultAbsent, or ResultInvalid.
func hostRequestAttr(ctx context.Context, m api.Module, stack []uint64) {
	v := viewOf(ctx)
	namePtr, nameLen, bufPtr, bufLen := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	name, ok := m.Memory().Read(namePtr, nameLen)
	if v == nil || !ok || nameLen > 256 {
		stack[0] = res(hostabi.ResultInvalid)
		return
	}
	if v.attrs == nil {
		stack[0] = res(hostabi.ResultAbsent)
		return
	}
	val, ok := v.attrs.Attr(string(name))
	if !ok {
		stack[0] = res(hostabi.ResultAbsent)
		return
	}
	if uint32(len(val)) <= bufLen && len(val) > 0 {
		if !m.Memory().WriteString(bufPtr, val) {
			stack[0] = res(hostabi.ResultInvalid)
			return
		}
	}
	stack[0] = uint64(len(val))
}

// res puts an i64 result, negative codes included, on the stack.
func res(v int64) uint64 { return uint64(v) }

// msToNs converts a module's milliseconds (not negative) to nanoseconds;
// what does not fit is as good as forever.
func msToNs(ms int64) int64 {
	return min(ms, math.MaxInt64/int64(time.Millisecond)) * int64(time.Millisecond)
}

// hostEndpointStats writes the figures of several endpoints in one call, so
// that a policy comparing candidates crosses the boundary once.
func hostEndpointStats(ctx context.Context, m api.Module, stack []uint64) {
	v := viewOf(ctx)
	idxPtr, count, outPtr, stride := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	const invalid = uint64(0xfffffffe) // -2 as i32
	mem := m.Memory()
	// count is small, but stride × count may not fit 32 bits.
	if v == nil || count > 64 || stride < hostabi.StatsSize || uint64(stride)*uint64(count) > math.MaxUint32 {
		stack[0] = invalid
		return
	}
	idx, ok := mem.Read(idxPtr, 4*count)
	if !ok {
		stack[0] = invalid
		return
	}
	out, ok := mem.Read(outPtr, stride*count)
	if !ok && count > 0 {
		stack[0] = invalid
		return
	}
	now := v.clock()
	for k := range count {
		i := int32(binary.LittleEndian.Uint32(idx[4*k:]))
		if i < 0 || int(i) >= len(v.items) {
			stack[0] = invalid
			return
		}
		inflight, latency, load, age := v.items[i].Figures(now)
		rec := out[k*stride:]
		binary.LittleEndian.PutUint64(rec[0:], uint64(inflight))
		binary.LittleEndian.PutUint64(rec[8:], uint64(latency))
		binary.LittleEndian.PutUint64(rec[16:], uint64(load))
		binary.LittleEndian.PutUint64(rec[24:], uint64(age))
	}
	stack[0] = hostabi.StatsSize
}
