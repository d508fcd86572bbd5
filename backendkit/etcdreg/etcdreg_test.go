package etcdreg_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wproxy/wproxy/backendkit/etcdreg"
	"github.com/wproxy/wproxy/internal/etcdtest"
)

const prefix = "/wproxy/services/api"

// syncBuffer is a log destination safe for the registration's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("registration log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// keyLease returns the value of key and the ID of its lease, or ok false
// when there is no such key.
func keyLease(t *testing.T, s *etcdtest.Server, key string, ctlArgs ...string) (value string, lease int64, ok bool) {
	t.Helper()
	out, err := s.Ctl(append(ctlArgs, "get", key, "-w", "json")...)
	if err != nil {
		t.Fatalf("etcdctl get: %v: %s", err, out)
	}
	var resp struct {
		Kvs []struct {
			Value []byte `json:"value"`
			Lease int64  `json:"lease"`
		} `json:"kvs"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("etcdctl get: %v: %s", err, out)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, false
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].Lease, true
}

// waitFor polls cond every 20 ms for up to limit and returns how long it
// took to hold.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not after %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func register(t *testing.T, cfg etcdreg.Config) *etcdreg.Registration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := etcdreg.Register(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r.Close(ctx)
	})
	return r
}

// The key holds the exact value, on a lease of the TTL that is kept alive,
// and Close removes it at once.
func TestRegisterKeepAliveAndClose(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	logger, _ := testLogger(t)
	r := register(t, etcdreg.Config{
		Endpoints: []string{s.URL}, Prefix: prefix + "/", Address: "127.0.0.1:8080",
		TTL: 2 * time.Second, Weight: 3, Zone: "a", Meta: map[string]string{"k": "v", "b": "2"},
		Logger: logger,
	})
	key := prefix + "/127.0.0.1:8080"
	if r.Key() != key {
		t.Fatalf("Key() = %q, want %q", r.Key(), key)
	}
	value, lease, ok := keyLease(t, s, key)
	if !ok {
		t.Fatal("no key after Register")
	}
	const want = `{"address":"127.0.0.1:8080","weight":3,"zone":"a","meta":{"b":"2","k":"v"}}`
	if value != want {
		t.Fatalf("value %s, want %s", value, want)
	}
	if lease != r.Lease() {
		t.Fatalf("key's lease %x, Registration.Lease() %x", lease, r.Lease())
	}
	out, err := s.Ctl("lease", "timetolive", fmt.Sprintf("%x", lease))
	if err != nil || !strings.Contains(out, "granted with TTL(2s)") {
		t.Fatalf("etcdctl lease timetolive: %v: %s", err, out)
	}

	time.Sleep(4 * time.Second) // 2×TTL
	if _, l, ok := keyLease(t, s, key); !ok || l != lease {
		t.Fatalf("after 2×TTL: key present %v, lease %x (was %x)", ok, l, lease)
	}

	start := time.Now()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if _, _, ok := keyLease(t, s, key); ok {
		t.Fatal("key still there right after Close")
	}
	t.Logf("Close took %v", took)
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// After an outage longer than the TTL, the registration is made again on a
// new lease as soon as etcd is back, and kept alive.
func TestRegisterOutage(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	logger, logs := testLogger(t)
	r := register(t, etcdreg.Config{
		Endpoints: []string{s.URL}, Prefix: prefix, Address: "127.0.0.1:8081",
		TTL: 2 * time.Second, Logger: logger,
	})
	key := r.Key()
	old := r.Lease()

	s.Stop()
	// The registration gives the lease up a TTL after etcd's last answer
	// (give or take the client's one-second ticks): etcd is down longer.
	lost := waitFor(t, 5*time.Second, "the lease given up", func() bool {
		return strings.Contains(logs.String(), "etcdreg: lease lost")
	})
	t.Logf("the lease was given up %v after etcd stopped", lost.Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // a few failed attempts
	s.Restart()
	took := waitFor(t, 8*time.Second, "registered again on a new lease", func() bool {
		_, l, ok := keyLease(t, s, key)
		return ok && l != old && l == r.Lease()
	})
	t.Logf("the key is back on a new lease %v after etcd restarted", took.Round(time.Millisecond))
	if out, _ := s.Ctl("lease", "timetolive", fmt.Sprintf("%x", old)); !strings.Contains(out, "already expired") {
		t.Errorf("the old lease was not revoked: %s", out)
	}

	lease := r.Lease()
	time.Sleep(4 * time.Second) // 2×TTL: the new lease is kept alive
	if _, l, ok := keyLease(t, s, key); !ok || l != lease {
		t.Fatalf("2×TTL after the return: key present %v, lease %x (was %x)", ok, l, lease)
	}
	text := logs.String()
	for _, msg := range []string{`msg="etcdreg: registered"`, `msg="etcdreg: lease lost `, `msg="etcdreg: registered again"`} {
		if n := strings.Count(text, msg); n != 1 {
			t.Errorf("log %s %d times, want once", msg, n)
		}
	}
}

// A lease revoked behind the registration's back is replaced at once.
func TestRegisterLeaseRevoked(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	logger, _ := testLogger(t)
	r := register(t, etcdreg.Config{
		Endpoints: []string{s.URL}, Prefix: prefix, Address: "127.0.0.1:8082",
		TTL: 5 * time.Second, Logger: logger,
	})
	old := r.Lease()
	if out, err := s.Ctl("lease", "revoke", fmt.Sprintf("%x", old)); err != nil {
		t.Fatalf("etcdctl lease revoke: %v: %s", err, out)
	}
	took := waitFor(t, 5*time.Second, "registered again", func() bool {
		_, l, ok := keyLease(t, s, r.Key())
		return ok && l != old
	})
	t.Logf("registered again %v after the lease was revoked", took.Round(time.Millisecond))
}

// Register fails, leaving nothing behind, when etcd does not answer within
// the context.
func TestRegisterUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = etcdreg.Register(ctx, etcdreg.Config{
		Endpoints: []string{"http://" + addr}, Prefix: prefix, Address: "127.0.0.1:8083", TTL: 2 * time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), "granting a lease") {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("took %v", took)
	}
}

func TestRegisterAuth(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	for _, args := range [][]string{
		{"user", "add", "root", "--new-user-password=secret"},
		{"auth", "enable"},
	} {
		if out, err := s.Ctl(args...); err != nil {
			t.Fatalf("etcdctl %v: %v: %s", args, err, out)
		}
	}
	cfg := etcdreg.Config{
		Endpoints: []string{s.URL}, Prefix: prefix, Address: "127.0.0.1:8084", TTL: 2 * time.Second,
		Username: "root", Password: "wrong",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := etcdreg.Register(ctx, cfg); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("wrong password: err = %v", err)
	}
	cfg.Password = "secret"
	r := register(t, cfg)
	if _, _, ok := keyLease(t, s, r.Key(), "--user", "root:secret"); !ok {
		t.Fatal("no key")
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := keyLease(t, s, r.Key(), "--user", "root:secret"); ok {
		t.Fatal("key left after Close")
	}
}

func TestRegisterTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := makeCert(t, dir, "ca", nil, nil)
	makeCert(t, dir, "server", ca, caKey)
	makeCert(t, dir, "client", ca, caKey)
	file := func(name string) string { return filepath.Join(dir, name) }
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	clientCert, err := tls.LoadX509KeyPair(file("client.pem"), file("client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}}}}
	s := etcdtest.Start(t, etcdtest.Options{
		CertFile: file("server.pem"), KeyFile: file("server-key.pem"), ClientCA: file("ca.pem"),
		Ready: func(url string) error {
			resp, err := hc.Get(url + "/health")
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		},
	})
	hc.CloseIdleConnections()
	ctl := []string{"--cacert", file("ca.pem"), "--cert", file("client.pem"), "--key", file("client-key.pem")}

	cfg := etcdreg.Config{
		Endpoints: []string{s.URL}, Prefix: prefix, Address: "127.0.0.1:8085", TTL: 2 * time.Second,
		CAFile: file("ca.pem"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := etcdreg.Register(ctx, cfg); err == nil {
		t.Fatal("registered without a client certificate")
	}
	cfg.CertFile, cfg.KeyFile = file("client.pem"), file("client-key.pem")
	r := register(t, cfg)
	if _, _, ok := keyLease(t, s, r.Key(), ctl...); !ok {
		t.Fatal("no key")
	}
}

// makeCert writes NAME.pem and NAME-key.pem: a CA when parent is nil, else a
// certificate for 127.0.0.1 that parent signed.
func makeCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
		parent, parentKey = tmpl, key
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, path), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(name+".pem", "CERTIFICATE", der)
	write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	return cert, key
}

func TestKeyValue(t *testing.T) {
	for _, p := range []string{"/wproxy/api", "/wproxy/api/", "/wproxy/api//"} {
		if k := etcdreg.Key(p, "10.0.0.1:8080"); k != "/wproxy/api/10.0.0.1:8080" {
			t.Errorf("Key(%q) = %q", p, k)
		}
	}
	for _, tt := range []struct {
		e    etcdreg.Entry
		want string
	}{
		{etcdreg.Entry{Address: "10.0.0.1:8080"}, `{"address":"10.0.0.1:8080","weight":1}`},
		{etcdreg.Entry{Address: "10.0.0.1:8080", Weight: 5, Zone: "a", Meta: map[string]string{"z": "1", "a": "2"}},
			`{"address":"10.0.0.1:8080","weight":5,"zone":"a","meta":{"a":"2","z":"1"}}`},
		{etcdreg.Entry{Address: "[::1]:80", Meta: map[string]string{}}, `{"address":"[::1]:80","weight":1}`},
	} {
		b, err := etcdreg.Value(tt.e)
		if err != nil || string(b) != tt.want {
			t.Errorf("Value(%+v) = %s, %v; want %s", tt.e, b, err, tt.want)
		}
		e, err := etcdreg.ParseValue(b)
		if err != nil || e.Address != tt.e.Address || e.Weight != max(tt.e.Weight, 1) || e.Zone != tt.e.Zone || len(e.Meta) != len(tt.e.Meta) {
			t.Errorf("ParseValue(%s) = %+v, %v", b, e, err)
		}
	}
	if _, err := etcdreg.Value(etcdreg.Entry{Address: "nope"}); err == nil {
		t.Error("Value accepted a bad address")
	}
	for _, bad := range []string{`{}`, `{"address":"x"}`, `{"address":"10.0.0.1:80","weight":1000001}`, `{"address":"10.0.0.1:80","weight":-1}`, `[`} {
		if _, err := etcdreg.ParseValue([]byte(bad)); err == nil {
			t.Errorf("ParseValue(%s) accepted it", bad)
		}
	}
	if e, err := etcdreg.ParseValue([]byte(`{"address":"10.0.0.1:80","extra":true}`)); err != nil || e.Weight != 1 {
		t.Errorf("ParseValue without weight: %+v, %v", e, err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := etcdreg.Config{Endpoints: []string{"http://127.0.0.1:2379"}, Prefix: "/p", Address: "10.0.0.1:80", TTL: 2 * time.Second}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		change func(*etcdreg.Config)
		want   string
	}{
		{func(c *etcdreg.Config) { c.Endpoints = nil }, "endpoints: none given"},
		{func(c *etcdreg.Config) { c.Endpoints = []string{""} }, "endpoints[0]: empty"},
		{func(c *etcdreg.Config) { c.CAFile = "ca.pem" }, "endpoints[0]: \"http://127.0.0.1:2379\" is plain http"},
		{func(c *etcdreg.Config) { c.Prefix = "" }, `prefix: "" does not start with /`},
		{func(c *etcdreg.Config) { c.Prefix = "p" }, `prefix: "p" does not start with /`},
		{func(c *etcdreg.Config) { c.Address = "10.0.0.1" }, `address: "10.0.0.1" is not host:port`},
		{func(c *etcdreg.Config) { c.Address = ":80" }, `address: ":80" has no host`},
		{func(c *etcdreg.Config) { c.Address = "h:http" }, `port "http" is not a number`},
		{func(c *etcdreg.Config) { c.Address = "h:0" }, `port "0" is not a number from 1 to 65535`},
		{func(c *etcdreg.Config) { c.TTL = time.Second }, "ttl: 1s is less than 2s"},
		{func(c *etcdreg.Config) { c.TTL = 2500 * time.Millisecond }, "ttl: 2.5s is not a whole number of seconds"},
		{func(c *etcdreg.Config) { c.Weight = 1000001 }, "weight: 1000001 is not from 1 to 1000000"},
		{func(c *etcdreg.Config) { c.Meta = map[string]string{"": "x"} }, "meta: empty key"},
		{func(c *etcdreg.Config) { c.Username = "u" }, "username and password: give both or neither"},
		{func(c *etcdreg.Config) { c.Endpoints[0] = "127.0.0.1:2379"; c.KeyFile = "k" }, "cert file and key file: give both or neither"},
	} {
		c := good
		c.Endpoints = append([]string(nil), good.Endpoints...)
		tt.change(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("want %q, got %v", tt.want, err)
		}
		if _, rerr := etcdreg.Register(context.Background(), c); rerr == nil || rerr.Error() != err.Error() {
			t.Errorf("Register: %v, want %v", rerr, err)
		}
	}
}
