// Package etcdreg registers a backend in etcd, under a key with a lease that
// it keeps alive, for wproxy's etcd discovery to add it to a pool; the key
// goes away when the backend closes its registration, or within the lease's
// TTL when it dies.
//
// The layout, shared with the discovery side (README, "Self-registration in
// etcd"): the key is Key(prefix, address), "<prefix>/<host:port>", and the
// value is Value(entry), JSON such as
//
//	{"address":"10.0.0.1:8080","weight":1,"zone":"a","meta":{"k":"v"}}
//
// It is a package of its own, not part of backendkit, because the etcd client
// brings gRPC, protobuf and zap with it: a backend that only wants backendkit's
// health and load handlers does not link them.
package etcdreg

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Limits and defaults.
const (
	// MinTTL is the shortest lease: etcd grants no shorter one (it raises
	// shorter TTLs to about this).
	MinTTL = 2 * time.Second
	// MaxWeight is the largest weight.
	MaxWeight = 1000000
	// DefaultFirstTimeout bounds the first registration when Register's
	// context has no deadline.
	DefaultFirstTimeout = 10 * time.Second
)

// Retry pacing after the lease is lost: waits double from retryMin up to
// retryMax, with ±20% jitter. The gRPC connection's own reconnection waits
// are capped at retryMax too, so that a registration comes back within a few
// seconds of etcd.
const (
	retryMin      = 250 * time.Millisecond
	retryMax      = 2 * time.Second
	attemptMax    = 5 * time.Second // bounds one grant and put
	revokeTimeout = time.Second     // bounds revoking a superseded lease
)

// Entry is the value of a registration key.
type Entry struct {
	// Address is the backend's host:port; it is also the last segment of
	// the key.
	Address string `json:"address"`
	// Weight is the backend's weight in its pool, 1 to MaxWeight. Zero
	// means 1.
	Weight uint32 `json:"weight"`
	// Zone is the backend's zone, omitted when empty.
	Zone string `json:"zone,omitempty"`
	// Meta is free-form metadata, omitted when empty.
	Meta map[string]string `json:"meta,omitempty"`
}

// Validate reports every problem of e at once, or nil.
func (e *Entry) Validate() error {
	var errs []error
	if err := checkAddress(e.Address); err != nil {
		errs = append(errs, fmt.Errorf("address: %w", err))
	}
	if e.Weight > MaxWeight {
		errs = append(errs, fmt.Errorf("weight: %d is not from 1 to %d", e.Weight, MaxWeight))
	}
	errs = append(errs, checkZoneMeta(e.Zone, e.Meta)...)
	return errors.Join(errs...)
}

// maxString is the longest zone, meta key or meta value, and the most meta
// entries, that wproxy's discovery takes.
const maxString = 65535

func checkZoneMeta(zone string, meta map[string]string) []error {
	var errs []error
	if len(zone) > maxString {
		errs = append(errs, fmt.Errorf("zone: longer than %d bytes", maxString))
	}
	if len(meta) > maxString {
		errs = append(errs, fmt.Errorf("meta: more than %d entries", maxString))
	}
	for k, v := range meta {
		switch {
		case k == "":
			errs = append(errs, errors.New("meta: empty key"))
		case len(k) > maxString || len(v) > maxString:
			errs = append(errs, fmt.Errorf("meta: %.20q...: longer than %d bytes", k, maxString))
		}
	}
	return errs
}

// Key is the key of the backend at address under prefix: the prefix without
// its trailing slashes, a slash, and the address. Key("/wproxy/api/",
// "10.0.0.1:8080") is "/wproxy/api/10.0.0.1:8080".
func Key(prefix, address string) string {
	return strings.TrimRight(prefix, "/") + "/" + address
}

// Value is the JSON value of e's key, its fields in a fixed order and meta's
// keys sorted: {"address":"10.0.0.1:8080","weight":1,"zone":"a","meta":{"k":"v"}}.
// A zero weight is written as 1; an empty zone and meta are left out.
func Value(e Entry) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if e.Weight == 0 {
		e.Weight = 1
	}
	return json.Marshal(e)
}

// ParseValue reads a registration value as Value writes it, or as a person
// wrote it with etcdctl: unknown fields are ignored, and a missing or zero
// weight is 1.
func ParseValue(b []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("registration value: %w", err)
	}
	if err := e.Validate(); err != nil {
		return Entry{}, fmt.Errorf("registration value: %w", err)
	}
	if e.Weight == 0 {
		e.Weight = 1
	}
	return e, nil
}

func checkAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", addr, port)
	}
	return nil
}

// Config configures a registration.
type Config struct {
	// Endpoints are etcd's client URLs: http://host:port, https://host:port
	// or host:port (TLS when a TLS file is set). At least one.
	Endpoints []string
	// Prefix is the key prefix, such as /wproxy/services/api: it starts
	// with a slash; trailing slashes are dropped.
	Prefix string
	// Address is the backend's host:port as the proxy dials it.
	Address string
	// TTL is the lease's time to live, whole seconds, at least MinTTL: how
	// long the key outlives a backend that dies without closing its
	// registration. The lease is renewed every third of it.
	TTL time.Duration
	// Weight is the backend's weight, 1 to MaxWeight. Zero means 1.
	Weight uint32
	// Zone and Meta go into the value as they are; empty ones are left out.
	Zone string
	Meta map[string]string
	// Username and Password, both or neither, authenticate to etcd.
	Username, Password string
	// CAFile verifies etcd's certificate (default: the system's roots);
	// CertFile and KeyFile, both or neither, are the client certificate.
	// Any of them turns TLS on for endpoints without a scheme.
	CAFile, CertFile, KeyFile string
	// Logger receives the registration, its loss, its return and its end,
	// each state change once. Default: slog.Default().
	Logger *slog.Logger
}

// Validate reports every problem of c at once, or nil.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("endpoints: none given"))
	}
	tlsFiles := c.CAFile != "" || c.CertFile != "" || c.KeyFile != ""
	for i, ep := range c.Endpoints {
		switch {
		case strings.TrimSpace(ep) == "":
			errs = append(errs, fmt.Errorf("endpoints[%d]: empty", i))
		case strings.HasPrefix(ep, "http://") && tlsFiles:
			errs = append(errs, fmt.Errorf("endpoints[%d]: %q is plain http, but TLS files are given (use https://)", i, ep))
		}
	}
	if c.Prefix == "" || !strings.HasPrefix(c.Prefix, "/") {
		errs = append(errs, fmt.Errorf("prefix: %q does not start with /", c.Prefix))
	}
	if err := checkAddress(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("address: %w", err))
	}
	switch {
	case c.TTL < MinTTL:
		errs = append(errs, fmt.Errorf("ttl: %v is less than %v, etcd's shortest lease", c.TTL, MinTTL))
	case c.TTL%time.Second != 0:
		errs = append(errs, fmt.Errorf("ttl: %v is not a whole number of seconds", c.TTL))
	}
	if c.Weight > MaxWeight {
		errs = append(errs, fmt.Errorf("weight: %d is not from 1 to %d", c.Weight, MaxWeight))
	}
	errs = append(errs, checkZoneMeta(c.Zone, c.Meta)...)
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("username and password: give both or neither"))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("cert file and key file: give both or neither"))
	}
	return errors.Join(errs...)
}

func (c *Config) tls() (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca file %s: no PEM certificate in it", c.CAFile)
		}
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert and key files: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Registration is a backend's key in etcd, kept alive until Close.
type Registration struct {
	cli    *clientv3.Client
	lessor clientv3.Lease // gives up a lease a TTL after etcd's last answer
	key    string
	value  []byte
	ttl    int64 // seconds
	log    *slog.Logger
	lease  atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Register grants a lease of cfg.TTL, puts the backend's key with it, and
// keeps the lease alive until Close. ctx bounds this first registration
// (DefaultFirstTimeout when it has no deadline); an error means there is no
// key and nothing left running.
//
// When the lease is lost afterwards — etcd unreachable for longer than the
// TTL, or the lease revoked by someone else — the registration retries, with
// waits growing to 2 s, to grant a new lease and put the key again, until
// Close.
func Register(ctx context.Context, cfg Config) (*Registration, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	value, err := Value(Entry{Address: cfg.Address, Weight: cfg.Weight, Zone: cfg.Zone, Meta: cfg.Meta})
	if err != nil {
		return nil, err
	}
	tc, err := cfg.tls()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultFirstTimeout)
		defer cancel()
	}
	dialTimeout := DefaultFirstTimeout
	if d, ok := ctx.Deadline(); ok {
		dialTimeout = max(time.Until(d), time.Millisecond)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints,
		// Bounds the authentication at connection; the first lease
		// keep-alive waits this plus a second for its answer.
		DialTimeout: dialTimeout,
		TLS:         tc,
		Username:    cfg.Username,
		Password:    cfg.Password,
		Logger:      zap.NewNop(), // the registration logs its state itself
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: retryMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: retryMax},
			MinConnectTimeout: attemptMax,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Registration{
		cli: cli,
		// The client's own lessor would wait DialTimeout+1s for the
		// first keep-alive's answer, not the TTL.
		lessor: clientv3.NewLeaseFromLeaseClient(clientv3.RetryLeaseClient(cli), cli, cfg.TTL),
		key:    Key(cfg.Prefix, cfg.Address),
		value:  value,
		ttl:    int64(cfg.TTL / time.Second),
		log:    log.With("key", Key(cfg.Prefix, cfg.Address)),
		done:   make(chan struct{}),
	}
	lease, err := r.grantAndPut(ctx)
	if err != nil {
		r.lessor.Close()
		cli.Close()
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	r.lease.Store(int64(lease))
	r.log.Info("etcdreg: registered", "lease", fmt.Sprintf("%x", int64(lease)), "ttl", cfg.TTL)
	loopCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(loopCtx, lease)
	return r, nil
}

// Key is the registration's key.
func (r *Registration) Key() string { return r.key }

// Lease is the ID of the lease the key is attached to now; it changes when
// the registration is made again after a loss.
func (r *Registration) Lease() int64 { return r.lease.Load() }

// Close stops keeping the lease alive and revokes it, so that the key
// disappears at once. ctx bounds the revocation; when it fails (etcd is
// unreachable), the key disappears when the lease expires, within the TTL,
// and the error says so. Close is safe to call more than once.
func (r *Registration) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
		lease := clientv3.LeaseID(r.lease.Load())
		_, err := r.lessor.Revoke(ctx, lease)
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.closeErr = fmt.Errorf("revoking lease %x of %s (the key goes when the lease expires): %w", int64(lease), r.key, err)
			r.log.Warn("etcdreg: could not revoke the lease; the key goes when it expires", "lease", fmt.Sprintf("%x", int64(lease)), "err", err)
		} else {
			r.log.Info("etcdreg: deregistered", "lease", fmt.Sprintf("%x", int64(lease)))
		}
		r.lessor.Close()
		r.cli.Close()
	})
	return r.closeErr
}

// grantAndPut grants a lease and puts the key with it.
func (r *Registration) grantAndPut(ctx context.Context) (clientv3.LeaseID, error) {
	g, err := r.lessor.Grant(ctx, r.ttl)
	if err != nil {
		return 0, fmt.Errorf("granting a lease: %w", err)
	}
	if _, err := r.cli.Put(ctx, r.key, string(r.value), clientv3.WithLease(g.ID)); err != nil {
		r.revoke(g.ID)
		return 0, fmt.Errorf("putting %s: %w", r.key, err)
	}
	return g.ID, nil
}

// revoke revokes a lease the registration no longer uses, if it can soon;
// otherwise the lease expires by itself.
func (r *Registration) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	r.lessor.Revoke(ctx, id)
}

// run keeps the lease alive, and registers again whenever it is lost, until
// ctx ends.
func (r *Registration) run(ctx context.Context, lease clientv3.LeaseID) {
	defer close(r.done)
	for {
		// The channel closes when the lease has expired (etcd said so, or
		// did not answer for a TTL) or ctx ended.
		ch, err := r.lessor.KeepAlive(ctx, lease)
		if err == nil {
			for range ch {
			}
		}
		if ctx.Err() != nil {
			return
		}
		lost := time.Now()
		args := []any{"lease", fmt.Sprintf("%x", int64(lease))}
		if err != nil {
			args = append(args, "err", err)
		}
		r.log.Warn("etcdreg: lease lost (etcd unreachable for longer than the TTL, or the lease revoked); registering again", args...)
		old := lease
		if lease = r.reregister(ctx); lease == 0 {
			return
		}
		r.lease.Store(int64(lease))
		r.log.Info("etcdreg: registered again", "lease", fmt.Sprintf("%x", int64(lease)), "after", time.Since(lost).Round(time.Millisecond))
		// etcd may have kept the old lease through a restart; it holds no
		// key any more.
		r.revoke(old)
	}
}

// reregister grants a new lease and puts the key again, retrying with
// growing waits, until it succeeds (the new lease) or ctx ends (0).
func (r *Registration) reregister(ctx context.Context) clientv3.LeaseID {
	wait := retryMin
	var last string
	for {
		actx, cancel := context.WithTimeout(ctx, attemptMax)
		lease, err := r.grantAndPut(actx)
		cancel()
		if err == nil {
			return lease
		}
		if ctx.Err() != nil {
			return 0
		}
		// Each distinct failure is logged once; repeats at debug level.
		if msg := err.Error(); msg != last {
			r.log.Warn("etcdreg: registering again failed; retrying", "err", err)
			last = msg
		} else {
			r.log.Debug("etcdreg: registering again failed; retrying", "err", err)
		}
		jitter := 0.8 + 0.4*rand.Float64()
		t := time.NewTimer(time.Duration(float64(wait) * jitter))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}
