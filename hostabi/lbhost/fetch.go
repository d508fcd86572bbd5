package lbhost

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wire"
)

// Limits of fetches and timers, per balancer.
const (
	// MaxFetches bounds the fetches started and not yet collected.
	MaxFetches = 64
	// MaxFetchBody bounds a fetch result's body; longer bodies are cut.
	MaxFetchBody = 4 << 20
	// MaxFetchTimeout bounds a fetch's timeout; 0 in a request means
	// DefaultFetchTimeout.
	MaxFetchTimeout     = 30 * time.Second
	DefaultFetchTimeout = 5 * time.Second
	// fetchRetention is how long a finished, uncollected result is kept.
	fetchRetention = time.Minute
	// MaxTimers bounds the timers pending.
	MaxTimers = 1024
)

// core is the part of a balancer that host functions reach: it is not
// generic, so that one set of host functions serves every balancer.
type core struct {
	name         string
	poolInFlight func() int64
	allow        func(hostport string) bool
	client       *http.Client
	ctx          context.Context // ends with the balancer: cancels fetches
	cancel       context.CancelFunc

	mu      sync.Mutex
	nextID  int64
	fetches map[int64]*fetch
	timers  map[*time.Timer]struct{}
	fire    func(id uint64) // calls the module's timer export
	closed  bool
}

type fetch struct {
	done     bool
	result   []byte // encoded wire.FetchResult
	finished time.Time
}

func newCore(name string, opts Options) *core {
	ctx, cancel := context.WithCancel(context.Background())
	c := &core{name: name, poolInFlight: opts.PoolInFlight, allow: opts.FetchAllowed, ctx: ctx, cancel: cancel,
		fetches: map[int64]*fetch{}, timers: map[*time.Timer]struct{}{}}
	c.client = &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
		},
		// A redirect could lead anywhere: modules see it as the answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

func (c *core) close() {
	c.mu.Lock()
	c.closed = true
	for t := range c.timers {
		t.Stop()
	}
	clear(c.timers)
	c.mu.Unlock()
	c.cancel()
	c.client.CloseIdleConnections()
}

// start validates and launches a fetch; it returns the id or a negative
// result code.
func (c *core) start(req *wire.FetchRequest) int64 {
	u, err := url.Parse(req.URL)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil {
		return hostabi.ResultInvalid
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	if c.allow == nil || !c.allow(host) {
		return hostabi.ResultDenied
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	timeout = min(timeout, MaxFetchTimeout)
	hreq, err := http.NewRequestWithContext(c.ctx, method, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		return hostabi.ResultInvalid
	}
	for _, h := range req.Header {
		hreq.Header.Add(h.Name, h.Value)
	}
	c.mu.Lock()
	if c.closed || len(c.fetches) >= MaxFetches {
		c.expireLocked(time.Now())
		if c.closed || len(c.fetches) >= MaxFetches {
			c.mu.Unlock()
			return hostabi.ResultBusy
		}
	}
	c.nextID++
	id := c.nextID
	f := &fetch{}
	c.fetches[id] = f
	c.mu.Unlock()
	go c.run(hreq, timeout, f)
	return id
}

func (c *core) run(req *http.Request, timeout time.Duration, f *fetch) {
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	res := &wire.FetchResult{}
	resp, err := c.client.Do(req.WithContext(ctx))
	if err != nil {
		res.Error = err.Error()
	} else {
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxFetchBody))
		resp.Body.Close()
		if err != nil {
			res.Error = "reading the body: " + err.Error()
		} else {
			res.Status = uint32(resp.StatusCode)
			res.Body = body
			for k, vs := range resp.Header {
				for _, v := range vs {
					res.Header = append(res.Header, wire.Header{Name: k, Value: v})
				}
			}
		}
	}
	enc, err := wire.AppendFetchResult(nil, res)
	if err != nil {
		enc, _ = wire.AppendFetchResult(nil, &wire.FetchResult{Error: "result too large to encode: " + err.Error()})
	}
	c.mu.Lock()
	f.done, f.result, f.finished = true, enc, time.Now()
	c.mu.Unlock()
}

// result returns a finished fetch's encoding and forgets it, or a negative
// result code.
func (c *core) result(id int64, room int) ([]byte, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.fetches[id]
	switch {
	case !ok:
		return nil, hostabi.ResultUnknown
	case !f.done:
		return nil, hostabi.ResultPending
	case len(f.result) > room:
		return nil, int64(len(f.result)) // the guest retries with room enough
	}
	delete(c.fetches, id)
	return f.result, int64(len(f.result))
}

func (c *core) expireLocked(now time.Time) {
	for id, f := range c.fetches {
		if f.done && now.Sub(f.finished) > fetchRetention {
			delete(c.fetches, id)
		}
	}
}

// hostFetchStart decodes the guest's request and starts it.
func hostFetchStart(ctx context.Context, m api.Module, stack []uint64) {
	v := viewOf(ctx)
	buf, ok := m.Memory().Read(uint32(stack[0]), uint32(stack[1]))
	if v == nil || !ok {
		stack[0] = res(hostabi.ResultInvalid)
		return
	}
	req, err := wire.DecodeFetchRequest(buf)
	if err != nil {
		stack[0] = res(hostabi.ResultInvalid)
		return
	}
	stack[0] = uint64(v.core.start(req))
}

// hostFetchResult writes a finished fetch into the guest's buffer and
// returns its size; when the buffer is too small it returns the size needed
// and keeps the result.
func hostFetchResult(ctx context.Context, m api.Module, stack []uint64) {
	v := viewOf(ctx)
	if v == nil {
		stack[0] = res(hostabi.ResultInvalid)
		return
	}
	id, ptr, room := int64(stack[0]), uint32(stack[1]), uint32(stack[2])
	if _, ok := m.Memory().Read(ptr, room); !ok {
		stack[0] = res(hostabi.ResultInvalid)
		return
	}
	res, n := v.core.result(id, int(room))
	if res != nil {
		m.Memory().Write(ptr, res)
	}
	stack[0] = uint64(n)
}

// hostTimerSet arms a one-shot timer that calls the module's timer export.
func hostTimerSet(ctx context.Context, _ api.Module, stack []uint64) {
	v := viewOf(ctx)
	delay, id := int64(stack[0]), stack[1]
	if v == nil || delay < 0 {
		stack[0] = uint64(hostabi.ErrnoInvalid)
		return
	}
	c := v.core
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.timers) >= MaxTimers || c.fire == nil {
		stack[0] = uint64(hostabi.ErrnoUnsupported)
		return
	}
	var t *time.Timer
	t = time.AfterFunc(time.Duration(msToNs(delay)), func() {
		c.mu.Lock()
		_, live := c.timers[t]
		delete(c.timers, t)
		c.mu.Unlock()
		if live {
			c.fire(id)
		}
	})
	c.timers[t] = struct{}{}
	stack[0] = uint64(hostabi.ErrnoOK)
}

var errNoTimerExport = errors.New("the module sets timers but does not export " + hostabi.ExportOnTimer)
