package l4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/wproxy/wproxy/core/balancer"
	"github.com/wproxy/wproxy/core/health"
	"github.com/wproxy/wproxy/hostabi/lbhost"
	"github.com/wproxy/wproxy/hostabi/wasmhost"
	"github.com/wproxy/wproxy/internal/gowasm"
	policieswasm "github.com/wproxy/wproxy/policies-wasm"
)

var discard = slog.New(slog.DiscardHandler)

// newPool builds a pool of the embedded module policy over addrs, the way
// the server does.
func newPool(t *testing.T, policy string, hopts balancer.HealthOptions, addrs ...string) *balancer.Pool {
	t.Helper()
	ctx := context.Background()
	rt, err := wasmhost.New(ctx, wasmhost.Config{CacheDir: gowasm.CacheDir(), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	wasm, ok := policieswasm.Lookup(policy)
	if !ok {
		t.Fatalf("%s is not embedded", policy)
	}
	mod, err := lbhost.Load(ctx, rt, policy, wasm)
	if err != nil {
		t.Fatal(err)
	}
	backends := make([]*balancer.Backend, len(addrs))
	for i, a := range addrs {
		backends[i] = &balancer.Backend{Address: a, Weight: 1}
	}
	pool, err := balancer.NewPool("p", mod, []byte("{}"), backends, balancer.Options{Logger: discard, Health: hopts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// backend is a test server on 127.0.0.1 running handle for each connection.
type backend struct {
	ln       net.Listener
	addr     string
	accepted atomic.Int64
	mu       sync.Mutex
	conns    map[*net.TCPConn]struct{}
	wg       sync.WaitGroup
}

func startBackend(t *testing.T, handle func(*net.TCPConn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln, addr: ln.Addr().String(), conns: map[*net.TCPConn]struct{}{}}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := nc.(*net.TCPConn)
			b.accepted.Add(1)
			b.mu.Lock()
			b.conns[c] = struct{}{}
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer func() {
					b.mu.Lock()
					delete(b.conns, c)
					b.mu.Unlock()
					c.Close()
				}()
				c.SetDeadline(time.Now().Add(2 * time.Minute))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		b.kill()
		b.wg.Wait()
	})
	return b
}

// kill closes the listener and resets every connection, like a crash.
func (b *backend) kill() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		c.SetLinger(0)
		c.Close()
	}
}

// echo echoes until EOF, then closes its side for writing.
func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

func startProxy(t *testing.T, pool *balancer.Pool, cfg Config) (*Proxy, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	p := New(func() *balancer.Pool { return pool }, cfg)
	errc := make(chan error, 1)
	go func() { errc <- p.Serve(ln) }()
	t.Cleanup(func() {
		p.Close()
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve returned %v, want net.ErrClosed", err)
		}
	})
	return p, ln.Addr().String()
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exchange sends msg and reads as many bytes back.
func exchange(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}

// transfer streams size random bytes (seeded) through c while reading what
// comes back; it returns the SHA-256 of what it sent and received and the
// count received. pause, when not nil, is waited for after the first half.
func transfer(c *net.TCPConn, seed uint64, size int64, halfway func(), pause <-chan struct{}) (sent, recv [32]byte, n int64, err error) {
	sh, rh := sha256.New(), sha256.New()
	werr := make(chan error, 1)
	go func() {
		src := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7})
		buf := make([]byte, 256<<10)
		for off := int64(0); off < size; {
			if pause != nil && off >= size/2 {
				<-pause
				pause = nil
			}
			m := int(min(int64(len(buf)), size-off))
			src.Read(buf[:m])
			sh.Write(buf[:m])
			if _, err := c.Write(buf[:m]); err != nil {
				werr <- err
				return
			}
			off += int64(m)
		}
		werr <- c.CloseWrite()
	}()
	buf := make([]byte, 256<<10)
	signaled := halfway == nil
	for {
		m, e := c.Read(buf)
		rh.Write(buf[:m])
		n += int64(m)
		if !signaled && n >= size/2 {
			halfway()
			signaled = true
		}
		if e != nil {
			if e != io.EOF {
				err = e
			}
			break
		}
	}
	if e := <-werr; err == nil {
		err = e
	}
	copy(sent[:], sh.Sum(nil))
	copy(recv[:], rh.Sum(nil))
	return sent, recv, n, err
}

// TestThroughput pushes 1 GiB each way (64 MiB under -race) through the
// proxy over 64 connections to two echo backends and compares SHA-256 at
// both ends: what each client sent, what the backends received, what each
// client got back.
func TestThroughput(t *testing.T) {
	const conns = 64
	per := int64(16 << 20) // 64 × 16 MiB = 1 GiB each way
	if raceEnabled {
		per = 1 << 20
	}
	var mu sync.Mutex
	var atBackends [][32]byte
	handle := func(c *net.TCPConn) {
		h := sha256.New()
		if _, err := io.Copy(c, io.TeeReader(c, h)); err != nil {
			return
		}
		c.CloseWrite()
		mu.Lock()
		atBackends = append(atBackends, [32]byte(h.Sum(nil)))
		mu.Unlock()
	}
	b1, b2 := startBackend(t, handle), startBackend(t, handle)
	pool := newPool(t, "round_robin", balancer.HealthOptions{}, b1.addr, b2.addr)
	p, addr := startProxy(t, pool, Config{Hash: HashNone})

	start := time.Now()
	var wg sync.WaitGroup
	sent := make([][32]byte, conns)
	errs := make([]error, conns)
	for i := range conns {
		wg.Go(func() {
			c := dial(t, addr)
			s, r, n, err := transfer(c, uint64(i), per, nil, nil)
			switch {
			case err != nil:
				errs[i] = err
			case n != per:
				errs[i] = fmt.Errorf("got %d bytes back, sent %d", n, per)
			case s != r:
				errs[i] = errors.New("SHA-256 of the echo differs from what was sent")
			}
			sent[i] = s
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Errorf("connection %d: %v", i, err)
		}
	}
	waitFor(t, "connections to close", func() bool { return p.Conns() == 0 && pool.InFlight() == 0 })
	mu.Lock()
	got := slices.Clone(atBackends)
	mu.Unlock()
	cmp := func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(sent, cmp)
	if !slices.Equal(got, sent) {
		t.Errorf("the backends received other streams than the clients sent (%d streams at the backends)", len(got))
	}
	st := p.Stats()
	total := uint64(conns * per)
	if st.BytesIn != total || st.BytesOut != total || st.Accepted != conns || st.Connected != conns || st.ConnectFailures != 0 {
		t.Errorf("stats %+v, want %d bytes each way and %d connections", st, total, conns)
	}
	if b1.accepted.Load() != conns/2 || b2.accepted.Load() != conns/2 {
		t.Errorf("backends got %d and %d connections, want %d each", b1.accepted.Load(), b2.accepted.Load(), conns/2)
	}
	t.Logf("%d MiB each way over %d connections in %v: %.0f MiB/s each way",
		total>>20, conns, elapsed.Round(time.Millisecond), float64(total)/(1<<20)/elapsed.Seconds())
}

func TestHalfClose(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		// The client closes its side; the backend reads EOF and still
		// replies.
		b := startBackend(t, func(c *net.TCPConn) {
			got, err := io.ReadAll(c)
			if err != nil {
				return
			}
			fmt.Fprintf(c, "got %q", got)
		})
		pool := newPool(t, "round_robin", balancer.HealthOptions{}, b.addr)
		p, addr := startProxy(t, pool, Config{})
		c := dial(t, addr)
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		reply, err := io.ReadAll(c)
		if err != nil || string(reply) != `got "hello"` {
			t.Fatalf("reply %q, %v", reply, err)
		}
		waitFor(t, "the connection to close", func() bool { return p.Conns() == 0 })
	})
	t.Run("backend", func(t *testing.T) {
		// The backend closes its side; the client reads EOF and can still
		// send.
		got := make(chan string, 1)
		b := startBackend(t, func(c *net.TCPConn) {
			c.Write([]byte("banner"))
			c.CloseWrite()
			data, err := io.ReadAll(c)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(data)
		})
		pool := newPool(t, "round_robin", balancer.HealthOptions{}, b.addr)
		p, addr := startProxy(t, pool, Config{})
		c := dial(t, addr)
		banner, err := io.ReadAll(c)
		if err != nil || string(banner) != "banner" {
			t.Fatalf("banner %q, %v", banner, err)
		}
		if p.Conns() != 1 {
			t.Fatalf("Conns %d after the backend's half-close, want 1", p.Conns())
		}
		if _, err := c.Write([]byte("still here")); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		if s := <-got; s != "still here" {
			t.Fatalf("backend got %q", s)
		}
		waitFor(t, "the connection to close", func() bool { return p.Conns() == 0 })
	})
}

// TestBackendKilled kills one of two backends while every connection is
// half way through its stream: its clients' connections are closed, the
// others finish intact.
func TestBackendKilled(t *testing.T) {
	const conns = 8
	size := int64(8 << 20)
	if raceEnabled {
		size = 1 << 20
	}
	a, b := startBackend(t, echo), startBackend(t, echo)
	pool := newPool(t, "round_robin", balancer.HealthOptions{}, a.addr, b.addr)
	p, addr := startProxy(t, pool, Config{Hash: HashNone})

	var halfway sync.WaitGroup
	halfway.Add(conns)
	killed := make(chan struct{})
	var wg sync.WaitGroup
	var intact, broken atomic.Int64
	for i := range conns {
		c := dial(t, addr)
		wg.Go(func() {
			s, r, n, err := transfer(c, uint64(i), size, halfway.Done, killed)
			if err == nil && n == size && s == r {
				intact.Add(1)
				return
			}
			if n < size/2 {
				t.Errorf("connection %d: %d bytes before the kill", i, n)
			}
			broken.Add(1)
		})
	}
	halfway.Wait()
	if p.Conns() != conns || a.accepted.Load() != conns/2 {
		t.Fatalf("Conns %d, backend a has %d connections", p.Conns(), a.accepted.Load())
	}
	a.kill()
	close(killed)
	wg.Wait()
	if intact.Load() != conns/2 || broken.Load() != conns/2 {
		t.Errorf("%d connections intact and %d broken, want %d each", intact.Load(), broken.Load(), conns/2)
	}
	waitFor(t, "connections to close", func() bool { return p.Conns() == 0 && pool.InFlight() == 0 })
}

// TestConnectFailure: with one backend refusing connections, every client
// gets the live one, and the refusing one is reported until it is ejected.
func TestConnectFailure(t *testing.T) {
	dead := refusingAddr(t)
	live := startBackend(t, echo)
	pool := newPool(t, "round_robin", balancer.HealthOptions{
		Rules: health.Rules{ConsecutiveFailures: 3, BaseEjection: time.Minute, MaxEjection: time.Minute},
	}, dead, live.addr)
	var deadB *balancer.Backend
	for _, m := range pool.Members() {
		if m.Address == dead {
			deadB = m
		}
	}
	p, addr := startProxy(t, pool, Config{Hash: HashNone, ConnectTimeout: time.Second})
	for i := range 20 {
		c := dial(t, addr)
		exchange(t, c, fmt.Sprintf("hello %d", i))
		c.Close()
	}
	st := p.Stats()
	if st.ConnectFailures != 3 || st.Connected != 20 {
		t.Errorf("stats %+v, want 3 connect failures (then ejection) and 20 connected", st)
	}
	if !deadB.HealthStatus().Ejected(time.Now()) {
		t.Error("the refusing backend is not ejected")
	}
	if ratio, ok := deadB.HealthStatus().Availability(time.Now()); !ok || ratio != 0 {
		t.Errorf("availability of the refusing backend %v %v, want 0", ratio, ok)
	}
	if live.accepted.Load() != 20 {
		t.Errorf("live backend got %d connections, want 20", live.accepted.Load())
	}
	waitFor(t, "connections to close", func() bool { return p.Conns() == 0 && pool.InFlight() == 0 })
}

// TestConnectFailureAll: when no backend can be connected, the client's
// connection is closed, after as many attempts as the pool has backends
// (at most 3).
func TestConnectFailureAll(t *testing.T) {
	for _, n := range []int{1, 2, 4} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			addrs := make([]string, n)
			for i := range addrs {
				addrs[i] = refusingAddr(t)
			}
			pool := newPool(t, "round_robin", balancer.HealthOptions{}, addrs...)
			p, addr := startProxy(t, pool, Config{Hash: HashNone})
			c := dial(t, addr)
			if data, err := io.ReadAll(c); len(data) != 0 {
				t.Fatalf("read %q, %v; want the connection closed", data, err)
			}
			waitFor(t, "the connection to close", func() bool { return p.Conns() == 0 && pool.InFlight() == 0 })
			if got, want := p.Stats().ConnectFailures, uint64(min(n, 3)); got != want {
				t.Errorf("%d connect failures, want %d", got, want)
			}
		})
	}
}

// refusingAddr returns an address on 127.0.0.1 where nothing listens.
func refusingAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestHash: with client_ip, every connection from 127.0.0.1 goes to one
// backend under maglev; with client_ip_port they spread, and with none
// round robin spreads them evenly.
func TestHash(t *testing.T) {
	const conns = 30
	for _, tc := range []struct {
		hash, policy string
		check        func([]int64) bool
	}{
		{HashClientIP, "maglev", func(n []int64) bool { return slices.Max(n) == conns }},
		{"", "maglev", func(n []int64) bool { return slices.Max(n) == conns }},
		{HashClientIPPort, "maglev", func(n []int64) bool { return slices.Max(n) < conns }},
		{HashNone, "round_robin", func(n []int64) bool { return slices.Equal(n, []int64{10, 10, 10}) }},
	} {
		t.Run(tc.hash+"/"+tc.policy, func(t *testing.T) {
			var bs []*backend
			var addrs []string
			for range 3 {
				b := startBackend(t, echo)
				bs = append(bs, b)
				addrs = append(addrs, b.addr)
			}
			pool := newPool(t, tc.policy, balancer.HealthOptions{}, addrs...)
			_, addr := startProxy(t, pool, Config{Hash: tc.hash})
			for i := range conns {
				c := dial(t, addr)
				exchange(t, c, fmt.Sprint(i))
				c.Close()
			}
			n := make([]int64, len(bs))
			for i, b := range bs {
				n[i] = b.accepted.Load()
			}
			if !tc.check(n) {
				t.Errorf("connections per backend %v", n)
			}
		})
	}
}

func TestKey(t *testing.T) {
	p := New(nil, Config{Logger: discard})
	for _, addr := range []net.Addr{
		&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 40000},
		&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 40001},
	} {
		h, ok, ip := p.key(addr)
		if !ok || ip != "192.0.2.1" || h != xxhash.Sum64String("192.0.2.1") {
			t.Errorf("key(%v) = %x %v %q", addr, h, ok, ip)
		}
	}
	p = New(nil, Config{Logger: discard, Hash: HashClientIPPort})
	if h, ok, _ := p.key(&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 40000}); !ok || h != xxhash.Sum64String("[2001:db8::1]:40000") {
		t.Errorf("client_ip_port hash %x %v", h, ok)
	}
	p = New(nil, Config{Logger: discard, Hash: HashNone})
	if _, ok, ip := p.key(&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}); ok || ip != "192.0.2.1" {
		t.Errorf("none: hashed %v, ip %q", ok, ip)
	}
}

// TestMaxConns: with MaxConns 2 a third connection is not served until one
// of the first two closes.
func TestMaxConns(t *testing.T) {
	b := startBackend(t, echo)
	pool := newPool(t, "round_robin", balancer.HealthOptions{}, b.addr)
	p, addr := startProxy(t, pool, Config{MaxConns: 2})
	c1, c2 := dial(t, addr), dial(t, addr)
	exchange(t, c1, "one")
	exchange(t, c2, "two")
	c3 := dial(t, addr) // the kernel completes the handshake
	if _, err := c3.Write([]byte("three")); err != nil {
		t.Fatal(err)
	}
	c3.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c3.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection read %d bytes, %v; want nothing", n, err)
	}
	if p.Conns() != 2 || p.Stats().Accepted != 2 {
		t.Fatalf("Conns %d, Accepted %d; want 2", p.Conns(), p.Stats().Accepted)
	}
	c1.Close()
	c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 5)
	if _, err := io.ReadFull(c3, got); err != nil || string(got) != "three" {
		t.Fatalf("third connection got %q, %v", got, err)
	}
	exchange(t, c2, "two again")
}

// TestIdleTimeout: a silent connection is closed after IdleTimeout; one with
// a byte now and then is not.
func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	b := startBackend(t, echo)
	pool := newPool(t, "round_robin", balancer.HealthOptions{}, b.addr)
	p, addr := startProxy(t, pool, Config{IdleTimeout: idle})

	trickle := dial(t, addr)
	silent := dial(t, addr)
	exchange(t, silent, "x")
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		io.ReadAll(silent)
		closed <- time.Since(start)
	}()
	// A byte every 100 ms for 5 idle timeouts.
	for i := 0; time.Since(start) < 5*idle; i++ {
		exchange(t, trickle, string(rune('a'+i%26)))
		time.Sleep(idle / 3)
	}
	select {
	case d := <-closed:
		if d < idle-50*time.Millisecond || d > 2*idle+200*time.Millisecond {
			t.Errorf("silent connection closed after %v, want about %v", d, idle)
		}
	default:
		t.Fatal("the silent connection is still open")
	}
	exchange(t, trickle, "still open")
	start = time.Now()
	if data, _ := io.ReadAll(trickle); len(data) != 0 {
		t.Fatalf("read %q", data)
	}
	if d := time.Since(start); d < idle-50*time.Millisecond || d > 2*idle+200*time.Millisecond {
		t.Errorf("trickling connection closed %v after its last byte, want about %v", d, idle)
	}
	waitFor(t, "connections to close", func() bool { return p.Conns() == 0 })
}

// TestIdleTimeoutBulk: a transfer to a slow reader (about 10 MB/s), many
// times longer than the idle timeout, is not cut: the chunks shrink to the
// rate seen, so that progress shows within the timeout.
func TestIdleTimeoutBulk(t *testing.T) {
	b := startBackend(t, echo)
	pool := newPool(t, "round_robin", balancer.HealthOptions{}, b.addr)
	_, addr := startProxy(t, pool, Config{IdleTimeout: 300 * time.Millisecond})
	c := dial(t, addr)
	const size = 12 << 20
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for off := 0; off < size; off += len(buf) {
			if _, err := c.Write(buf); err != nil {
				done <- err
				return
			}
		}
		done <- c.CloseWrite()
	}()
	var n int
	buf := make([]byte, 16<<10)
	start := time.Now()
	for {
		m, err := c.Read(buf)
		n += m
		if err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-done; err != nil || n != size {
		t.Fatalf("got %d of %d bytes back in %v (writer: %v)", n, size, time.Since(start), err)
	}
}

func TestShutdown(t *testing.T) {
	b := startBackend(t, echo)
	pool := newPool(t, "round_robin", balancer.HealthOptions{}, b.addr)

	t.Run("graceful", func(t *testing.T) {
		p, addr := startProxy(t, pool, Config{})
		c := dial(t, addr)
		exchange(t, c, "hi")
		done := make(chan error, 1)
		go func() { done <- p.Shutdown(context.Background()) }()
		waitFor(t, "the listener to close", func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		exchange(t, c, "still served")
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a connection open", err)
		case <-time.After(50 * time.Millisecond):
		}
		c.CloseWrite()
		io.ReadAll(c)
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		p, addr := startProxy(t, pool, Config{})
		c := dial(t, addr)
		exchange(t, c, "hi")
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v", err)
		}
		if data, _ := io.ReadAll(c); len(data) != 0 {
			t.Fatalf("read %q after Shutdown", data)
		}
		waitFor(t, "connections to close", func() bool { return p.Conns() == 0 })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Serve(ln); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
	})
	waitFor(t, "the pool's connections to end", func() bool { return pool.InFlight() == 0 })
}
