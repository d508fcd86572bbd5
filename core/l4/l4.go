// Package l4 proxies TCP connections to a pool's backends: a layer 4
// listener. Each client connection is given to one backend the pool's
// balancing module picks, by a hash of the client address or without a key,
// and bytes are copied both ways until both sides are done.
//
// Copying uses splice(2): both sockets stay *net.TCPConn and every transfer
// is dst.ReadFrom(&io.LimitedReader{R: src, N: chunk}), which the net
// package splices from socket to socket through a pipe, without the bytes
// entering user space. The price is that progress is only seen when a
// ReadFrom returns, so each one is bounded: by a chunk of at most 4 MiB (so
// counters move during bulk transfers), by a read deadline a quarter of the
// idle timeout ahead (so a trickle of bytes shows as activity), and, after a
// slow chunk, by what the rate just seen moves in an eighth of the idle
// timeout (so a slow reader shows progress too). A watchdog timer per
// connection closes both sides when no ReadFrom moved a byte for the idle
// timeout. What it cannot see is one splice pump in progress (at most 1
// MiB, the pipe's size): a peer reading slower than 1 MiB per idle timeout
// (3.5 KB/s at the default 5m) just after a fast phase may be taken for
// idle.
package l4

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/wproxy/wproxy/core/balancer"
)

// Hash keys.
const (
	HashClientIP     = "client_ip"
	HashClientIPPort = "client_ip_port"
	HashNone         = "none"
)

// Defaults of Config.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultMaxConns       = 10000
)

// Config of an L4 listener.
type Config struct {
	// ConnectTimeout bounds a connect to a backend; default 5s.
	ConnectTimeout time.Duration
	// IdleTimeout: no byte in either direction for this long closes both
	// sides; default 5m, negative for none. A connection is closed between
	// IdleTimeout and 1.25×IdleTimeout after its last byte (see the package
	// comment for how progress is seen).
	IdleTimeout time.Duration
	// MaxConns is the most client connections open at once; beyond it the
	// listener stops accepting (the kernel's backlog holds the next ones)
	// until one closes. Default 10000.
	MaxConns int
	// Hash is what a connection's key is: "client_ip" (default),
	// "client_ip_port" or "none" (no key: the pool's policy balances
	// without one, e.g. round robin). An unknown value is logged and
	// treated as client_ip.
	Hash   string
	Logger *slog.Logger
}

// Stats are a proxy's counters since it was made.
type Stats struct {
	Accepted        uint64 // client connections accepted
	Connected       uint64 // backend connects that succeeded
	ConnectFailures uint64 // backend connects that failed
	BytesIn         uint64 // from clients to backends
	BytesOut        uint64 // from backends to clients
}

// Chunk bounds of one ReadFrom: a bulk transfer moves maxChunk at a time; a
// chunk that took longer than the tick shrinks the next ones (down to
// minChunk) so that a slow reader still shows progress.
const (
	maxChunk = 4 << 20
	minChunk = 16 << 10
)

// Proxy is an L4 proxy. Serve it on any number of listeners.
type Proxy struct {
	pool   func() *balancer.Pool
	cfg    Config
	logger *slog.Logger
	dialer net.Dialer
	tick   time.Duration // read deadline of one chunk; 0: none
	epoch  time.Time

	sem    chan struct{} // a slot per open client connection
	ctx    context.Context
	cancel context.CancelFunc // on Close: aborts connects

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
	stopping  bool          // Shutdown or Close called
	closed    bool          // Close called, or Shutdown's ctx ended
	done      chan struct{} // closed with stopping

	open            atomic.Int64
	accepted        atomic.Uint64
	connected       atomic.Uint64
	connectFailures atomic.Uint64
	bytesIn         atomic.Uint64
	bytesOut        atomic.Uint64
	lastWarn        atomic.Int64
}

// New returns a proxy to the pool pool returns, called once per connection
// so that a reload may swap pools.
func New(pool func() *balancer.Pool, cfg Config) *Proxy {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch cfg.Hash {
	case "":
		cfg.Hash = HashClientIP
	case HashClientIP, HashClientIPPort, HashNone:
	default:
		cfg.Logger.Error("l4: unknown hash key; hashing the client IP", "hash", cfg.Hash)
		cfg.Hash = HashClientIP
	}
	p := &Proxy{
		pool: pool, cfg: cfg, logger: cfg.Logger,
		dialer:    net.Dialer{Timeout: cfg.ConnectTimeout},
		epoch:     time.Now(),
		sem:       make(chan struct{}, cfg.MaxConns),
		listeners: map[*net.Listener]struct{}{}, conns: map[*conn]struct{}{},
		done: make(chan struct{}),
	}
	if cfg.IdleTimeout > 0 {
		p.tick = max(cfg.IdleTimeout/4, time.Millisecond)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

// Serve accepts connections on ln and proxies each until Shutdown or Close,
// after which it returns net.ErrClosed; another error of Accept that is not
// a passing shortage (of descriptors, memory) is returned. ln is closed
// when Serve returns.
func (p *Proxy) Serve(ln net.Listener) error {
	defer ln.Close()
	if !p.trackListener(&ln, true) {
		return net.ErrClosed
	}
	defer p.trackListener(&ln, false)
	var delay time.Duration
	for {
		select {
		case p.sem <- struct{}{}:
		case <-p.done:
			return net.ErrClosed
		}
		nc, err := ln.Accept()
		if err != nil {
			<-p.sem
			if p.isStopping() {
				return net.ErrClosed
			}
			if !passing(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.logger.Warn("l4: accept failed; retrying", "err", err, "in", delay)
			select {
			case <-time.After(delay):
			case <-p.done:
				return net.ErrClosed
			}
			continue
		}
		delay = 0
		p.accepted.Add(1)
		c := &conn{p: p, client: nc}
		if !p.trackConn(c, true) {
			nc.Close()
			<-p.sem
			return net.ErrClosed
		}
		p.open.Add(1)
		go c.serve()
	}
}

// passing reports whether an accept error is a shortage that may pass.
func passing(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EAGAIN, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Shutdown stops accepting, then waits for the open connections to end
// until ctx is done; then it closes them and returns ctx's error.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.stop()
	wait := 5 * time.Millisecond
	for {
		p.mu.Lock()
		idle := len(p.conns) == 0 && len(p.listeners) == 0
		p.mu.Unlock()
		if idle {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			p.Close()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// Close stops accepting and closes every connection now.
func (p *Proxy) Close() error {
	err := p.stop()
	p.cancel()
	p.mu.Lock()
	p.closed = true
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close(false)
	}
	return err
}

// stop closes the listeners; it returns the first error of their Close.
func (p *Proxy) stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopping {
		p.stopping = true
		close(p.done)
	}
	var err error
	for ln := range p.listeners {
		if e := (*ln).Close(); e != nil && err == nil && !errors.Is(e, net.ErrClosed) {
			err = e
		}
	}
	return err
}

func (p *Proxy) isStopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

func (p *Proxy) trackListener(ln *net.Listener, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !add {
		delete(p.listeners, ln)
		return true
	}
	if p.stopping {
		return false
	}
	p.listeners[ln] = struct{}{}
	return true
}

func (p *Proxy) trackConn(c *conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !add {
		delete(p.conns, c)
		return true
	}
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// Conns returns the client connections open now.
func (p *Proxy) Conns() int { return int(p.open.Load()) }

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Accepted: p.accepted.Load(), Connected: p.connected.Load(), ConnectFailures: p.connectFailures.Load(),
		BytesIn: p.bytesIn.Load(), BytesOut: p.bytesOut.Load(),
	}
}

// key returns a connection's hash, whether it has one, and the client IP.
// The hash is xxHash64 of the client IP as text ("192.0.2.1", "2001:db8::1",
// the same string the HTTP listeners hash for client_ip) or of IP and port
// ("192.0.2.1:40000", "[2001:db8::1]:40000"), so that every instance
// computes the same hash for the same client.
func (p *Proxy) key(addr net.Addr) (hash uint64, hashed bool, ip string) {
	var ap netip.AddrPort
	if ta, ok := addr.(*net.TCPAddr); ok {
		ap = ta.AddrPort()
	} else if addr != nil {
		ap, _ = netip.ParseAddrPort(addr.String())
	}
	if !ap.IsValid() {
		return 0, false, ""
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	ip = ap.Addr().String()
	switch p.cfg.Hash {
	case HashNone:
		return 0, false, ip
	case HashClientIPPort:
		return xxhash.Sum64String(ap.String()), true, ip
	}
	return xxhash.Sum64String(ip), true, ip
}

// warnf logs at most once a second.
func (p *Proxy) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	if last := p.lastWarn.Load(); now-last >= int64(time.Second) && p.lastWarn.CompareAndSwap(last, now) {
		p.logger.Warn(msg, args...)
	}
}

// conn is one client connection and its backend connection.
type conn struct {
	p      *Proxy
	client net.Conn

	mu      sync.Mutex
	backend net.Conn
	closed  bool
	wd      *time.Timer  // idle watchdog
	last    atomic.Int64 // last progress, ns since p.epoch
}

func (c *conn) serve() {
	p := c.p
	defer func() {
		c.close(false)
		p.trackConn(c, false)
		p.open.Add(-1)
		<-p.sem
	}()
	pool := p.pool()
	if pool == nil {
		p.warn("l4: no pool; connection closed", "client", c.client.RemoteAddr().String())
		return
	}
	b, bc := c.connect(pool)
	if b == nil {
		return
	}
	defer pool.Done(b)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		bc.Close()
		return
	}
	c.backend = bc
	c.mu.Unlock()
	c.relay(bc)
}

// connect picks a backend and connects to it, trying up to two others
// (fewer when the pool has fewer) when a connect fails.
func (c *conn) connect(pool *balancer.Pool) (*balancer.Backend, net.Conn) {
	p := c.p
	hash, hashed, ip := p.key(c.client.RemoteAddr())
	attempts := 1 + min(2, len(pool.Backends())-1)
	var not *balancer.Backend
	var lastErr error
	for range max(attempts, 1) {
		b, err := pool.PickConn(hash, hashed, balancer.ConnAttrs{ClientIP: ip}, not, time.Now())
		if err != nil {
			lastErr = err
			break
		}
		bc, err := p.dialer.DialContext(p.ctx, "tcp", b.Address)
		if err == nil {
			p.connected.Add(1)
			pool.Report(b, true, "")
			return b, bc
		}
		pool.Done(b)
		if p.ctx.Err() != nil { // Close: not the backend's fault
			return nil, nil
		}
		p.connectFailures.Add(1)
		pool.Report(b, false, "connect: "+err.Error())
		p.logger.Debug("l4: connect failed", "pool", pool.Name, "backend", b.Address, "err", err)
		not, lastErr = b, err
	}
	p.warn("l4: no backend could be connected; client connection closed", "pool", pool.Name,
		"client", c.client.RemoteAddr().String(), "err", lastErr)
	return nil, nil
}

// relay copies both ways until both directions reached EOF, or one failed,
// or the connection idled out.
func (c *conn) relay(bc net.Conn) {
	p := c.p
	c.touch()
	if p.cfg.IdleTimeout > 0 {
		c.mu.Lock()
		c.wd = time.AfterFunc(p.cfg.IdleTimeout, c.watch)
		c.mu.Unlock()
	}
	done := make(chan struct{})
	go func() {
		c.direction(bc, c.client, &p.bytesIn)
		close(done)
	}()
	c.direction(c.client, bc, &p.bytesOut)
	<-done
}

// direction copies src to dst. At EOF it closes dst for writing (its peer
// sees EOF too) and leaves the other direction running; on an error it
// closes both sides.
func (c *conn) direction(dst, src net.Conn, counter *atomic.Uint64) {
	tick := c.p.tick
	chunk := int64(maxChunk)
	for {
		var start time.Time
		if tick > 0 {
			start = time.Now()
			src.SetReadDeadline(start.Add(tick))
		}
		// io.Copy calls dst.ReadFrom: a *net.TCPConn splices from a
		// LimitedReader of a *net.TCPConn.
		n, err := io.Copy(dst, &io.LimitedReader{R: src, N: chunk})
		if n > 0 {
			counter.Add(uint64(n))
			c.touch()
		}
		switch {
		case err == nil && n < chunk: // EOF
			if cw, ok := dst.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
				c.close(false)
			}
			return
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
			// A chunk, or a tick: go on. The watchdog judges idleness.
		default:
			c.close(true)
			return
		}
		// A chunk should take at most half a tick at the rate just seen:
		// the watchdog sees no progress within one.
		if d := time.Since(start); tick > 0 && n > 0 && d > tick/2 {
			chunk = min(max(int64(float64(n)*float64(tick/2)/float64(d)), minChunk), maxChunk)
		} else if n == chunk {
			chunk = min(2*chunk, maxChunk)
		}
	}
}

func (c *conn) touch() { c.last.Store(int64(time.Since(c.p.epoch))) }

// watch is the idle watchdog: it closes both sides when nothing moved for
// the idle timeout, and otherwise sleeps until the timeout would be reached.
func (c *conn) watch() {
	idle := time.Since(c.p.epoch) - time.Duration(c.last.Load())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if left := c.p.cfg.IdleTimeout - idle; left > 0 {
		c.wd.Reset(left)
		return
	}
	c.p.logger.Debug("l4: idle connection closed", "client", c.client.RemoteAddr().String(), "idle", idle)
	c.closeLocked(false)
}

// close closes both sides; abort resets them (a failure rather than an end:
// the peers must not take it for a complete stream).
func (c *conn) close(abort bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(abort)
}

func (c *conn) closeLocked(abort bool) {
	if c.closed {
		return
	}
	c.closed = true
	if c.wd != nil {
		c.wd.Stop()
	}
	for _, nc := range []net.Conn{c.client, c.backend} {
		if nc == nil {
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok && abort {
			tc.SetLinger(0)
		}
		nc.Close()
	}
}
