// Package upstream talks HTTP/1.1 to backends over pooled connections.
//
// It is wproxy's own client side rather than net/http's Transport: a request
// is written and its response read on the calling goroutine, with buffers
// that live as long as the connection, so a proxied request costs no
// goroutine, channel or per-request buffer (RATIONALE.md gives the figures).
//
// A ConnPool keeps the idle connections of one backend, most recently used
// first. It is safe for concurrent use; a Conn belongs to one request at a
// time.
package upstream

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Buffer sizes of a connection. The read buffer bounds one response header
// line; the whole header is bounded by MaxResponseHeaderBytes.
const (
	readBufferSize  = 8 << 10
	writeBufferSize = 4 << 10
)

// ErrPoolClosed is returned by Get after Close.
var ErrPoolClosed = errors.New("connection pool closed")

// PoolConfig configures a ConnPool.
type PoolConfig struct {
	// MaxIdle bounds the idle connections kept. 0 keeps none.
	MaxIdle int
	// IdleTimeout closes connections idle for longer.
	IdleTimeout time.Duration
	// ConnectTimeout bounds dialing.
	ConnectTimeout time.Duration
}

// Stats are a pool's counters.
type Stats struct {
	Open    int64  // connections open now, idle or in use
	Idle    int    // idle connections now
	Created uint64 // connections dialed since start
	Reused  uint64 // requests sent on a connection that served one before
}

// ConnPool is the connection pool of one backend address.
type ConnPool struct {
	addr   string
	cfg    PoolConfig
	dialer net.Dialer

	mu     sync.Mutex
	idle   []*Conn // oldest first
	closed bool

	open    atomic.Int64
	created atomic.Uint64
	reused  atomic.Uint64
}

// NewConnPool returns an empty pool for addr (host:port).
func NewConnPool(addr string, cfg PoolConfig) *ConnPool {
	return &ConnPool{addr: addr, cfg: cfg, dialer: net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}}
}

// Addr returns the backend address.
func (p *ConnPool) Addr() string { return p.addr }

// Conn is one connection to a backend with its buffers.
type Conn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	pool   *ConnPool
	idleAt time.Time
	// Reused reports whether the connection served a request before this one.
	Reused bool

	resp    Response // reused for every response read on this connection
	scratch [20]byte
	fields  []field // scratch of readHeader
	raw     []byte  // scratch of readHeader
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}
)

// Get returns an idle connection, or dials a new one. An idle connection
// past its idle timeout at now is closed rather than returned.
func (p *ConnPool) Get(ctx context.Context, now time.Time) (*Conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	var stale []*Conn
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		if now.Sub(c.idleAt) < p.cfg.IdleTimeout {
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			c.Reused = true
			p.reused.Add(1)
			return c, nil
		}
		// The newest is past its idle timeout, so all are.
		stale, p.idle = p.idle, nil
	}
	p.mu.Unlock()
	for _, c := range stale {
		c.close()
	}
	return p.dial(ctx)
}

// Dial always opens a new connection, for a retry after a reused one failed.
func (p *ConnPool) Dial(ctx context.Context) (*Conn, error) { return p.dial(ctx) }

func (p *ConnPool) dial(ctx context.Context) (*Conn, error) {
	nc, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	p.created.Add(1)
	p.open.Add(1)
	br := readers.Get().(*bufio.Reader)
	br.Reset(nc)
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(nc)
	return &Conn{nc: nc, br: br, bw: bw, pool: p}, nil
}

// Put returns a connection whose last response was read to its end, for
// reuse, idle since now. It is closed instead when the pool is full or
// closed.
func (p *ConnPool) Put(c *Conn, now time.Time) {
	c.idleAt = now
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.cfg.MaxIdle {
		p.mu.Unlock()
		c.close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// Close closes idle connections now; connections in use close when put back.
func (p *ConnPool) Close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// CloseIdle closes connections idle for longer than the idle timeout.
func (p *ConnPool) CloseIdle(now time.Time) {
	p.mu.Lock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].idleAt) >= p.cfg.IdleTimeout {
		n++
	}
	stale := append([]*Conn(nil), p.idle[:n]...)
	p.idle = append(p.idle[:0], p.idle[n:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	p.mu.Unlock()
	for _, c := range stale {
		c.close()
	}
}

// Stats returns the pool's counters.
func (p *ConnPool) Stats() Stats {
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	return Stats{Open: p.open.Load(), Idle: idle, Created: p.created.Load(), Reused: p.reused.Load()}
}

// Close closes a connection that cannot be reused.
func (c *Conn) Close() { c.close() }

func (c *Conn) close() {
	if c.nc == nil {
		return
	}
	c.nc.Close()
	c.nc = nil
	c.pool.open.Add(-1)
	c.br.Reset(nil)
	readers.Put(c.br)
	c.bw.Reset(nil)
	writers.Put(c.bw)
	c.br, c.bw = nil, nil
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }
