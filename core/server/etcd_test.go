package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wproxy/wproxy/internal/etcdtest"
)

// writeCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, as PEM files in dir.
func writeCerts(t *testing.T, dir string) (ca, cert, key, clientCert, clientKey string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage []x509.ExtKeyUsage, ips []net.IP) ([]byte, []byte) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(k)
		return der, kb
	}
	// etcd's HTTP gateway dials etcd's own gRPC port with the server's
	// certificate, which must therefore allow client authentication too.
	sDER, sKey := issue(2, "etcd", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, []net.IP{net.IPv4(127, 0, 0, 1)})
	cDER, cKey := issue(3, "wproxy", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", sDER), write("server-key.pem", "EC PRIVATE KEY", sKey),
		write("client.pem", "CERTIFICATE", cDER), write("client-key.pem", "EC PRIVATE KEY", cKey)
}

// The etcd source over TLS with a client certificate (etcd refuses clients
// without one), and with a user and password (etcd's auth enabled): each
// pool gets the backends registered under its prefix, and follows a change.
func TestEtcdDiscoveryTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key, ccert, ckey := writeCerts(t, dir)
	pair, err := tls.LoadX509KeyPair(ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	pemCA, _ := os.ReadFile(ca)
	roots.AppendCertsFromPEM(pemCA)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}}}
	secure := etcdtest.Start(t, etcdtest.Options{CertFile: cert, KeyFile: key, ClientCA: ca, Ready: func(url string) error {
		resp, err := client.Get(url + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}})
	tlsCtl := func(args ...string) {
		t.Helper()
		if out, err := secure.Ctl(append([]string{"--cacert", ca, "--cert", ccert, "--key", ckey}, args...)...); err != nil {
			t.Fatalf("etcdctl %v: %v %s", args, err, out)
		}
	}
	authed := etcdtest.Start(t, etcdtest.Options{})
	authCtl := func(args ...string) {
		t.Helper()
		if out, err := authed.Ctl(args...); err != nil {
			t.Fatalf("etcdctl %v: %v %s", args, err, out)
		}
	}
	authCtl("user", "add", "root:rootpw")
	authCtl("user", "add", "wproxy:s3cret")
	authCtl("role", "add", "reader")
	authCtl("role", "grant-permission", "reader", "--prefix=true", "read", "/svc/")
	authCtl("user", "grant-role", "wproxy", "reader")
	authCtl("auth", "enable")
	rootCtl := func(args ...string) { t.Helper(); authCtl(append([]string{"--user", "root:rootpw"}, args...)...) }

	a, b, c := startHealthBackend(t, "a"), startHealthBackend(t, "b"), startHealthBackend(t, "c")
	value := func(addr string) string { return fmt.Sprintf(`{"address":%q,"weight":1}`, addr) }
	tlsCtl("put", "/svc/tls/"+a.addr, value(a.addr))
	rootCtl("put", "/svc/auth/"+b.addr, value(b.addr))

	url, srv := startProxyIn(t, dir, fmt.Sprintf(`
listeners:
  - address: "127.0.0.1:0"
    routes: [{path_prefix: /tls, pool: p}, {path_prefix: /auth, pool: q}]
pools:
  p:
    backends: []
    discovery:
      - etcd: {endpoints: [%s], prefix: /svc/tls, ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem}
        interval: 50ms
  q:
    backends: []
    discovery:
      - etcd: {endpoints: [%s], prefix: /svc/auth, username: wproxy, password: s3cret}
        interval: 50ms
admin: {address: "127.0.0.1:0"}
`, secure.URL, authed.URL))
	if got := sendN(t, url+"/tls", 4); got["a"] != 4 {
		t.Fatalf("TLS pool: %v", got)
	}
	if got := sendN(t, url+"/auth", 4); got["b"] != 4 {
		t.Fatalf("auth pool: %v", got)
	}
	tlsCtl("put", "/svc/tls/"+c.addr, value(c.addr))
	rootCtl("put", "/svc/auth/"+c.addr, value(c.addr))
	waitFor(t, "c in both pools", func() bool {
		in := func(pool string) bool {
			for _, m := range srv.Pool(pool).Backends() {
				if m.Address == c.addr {
					return true
				}
			}
			return false
		}
		return in("p") && in("q")
	})
	for _, d := range srv.Discovery() {
		if !d[0].OK || d[0].Errors != 0 {
			t.Fatalf("discovery status %+v", d)
		}
	}
}

// While etcd is down the pool keeps its set and says so (GET /pools'
// discovery status, wproxy_discovery_up 0, errors counted); when etcd
// returns, a change made meanwhile is applied.
func TestEtcdOutageIsReported(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Options{})
	a, b := startHealthBackend(t, "a"), startHealthBackend(t, "b")
	put := func(addr string) {
		t.Helper()
		if out, err := etcd.Ctl("put", "/svc/web/"+addr, fmt.Sprintf(`{"address":%q}`, addr)); err != nil {
			t.Fatalf("put: %v %s", err, out)
		}
	}
	put(a.addr)
	url, srv := startProxy(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    backends: []
    discovery:
      - etcd: {endpoints: [%s], prefix: /svc/web}
        interval: 50ms
admin: {address: "127.0.0.1:0"}
`, etcd.URL))
	if got := sendN(t, url, 4); got["a"] != 4 {
		t.Fatalf("before the outage: %v", got)
	}
	etcd.Stop()
	waitFor(t, "the outage to be reported", func() bool {
		st := srv.Discovery()["p"]
		return len(st) == 1 && !st[0].OK && st[0].Errors > 0 && st[0].LastError != ""
	})
	if up, _ := metricValue(scrape(t, srv), "wproxy_discovery_up", labels("pool", "p")); up != 0 {
		t.Fatalf("wproxy_discovery_up = %v during the outage", up)
	}
	if got := sendN(t, url, 4); got["a"] != 4 {
		t.Fatalf("during the outage the pool keeps a: %v", got)
	}
	t.Logf("during the outage: %s", srv.Discovery()["p"][0].LastError)
	etcd.Restart()
	put(b.addr)
	back := time.Now()
	waitFor(t, "b after etcd returned", func() bool { return balanced(srv, b.addr) })
	t.Logf("etcd back: the new registration routed after %s", time.Since(back).Round(time.Millisecond))
	if st := srv.Discovery()["p"][0]; !st.OK {
		t.Fatalf("status after recovery: %+v", st)
	}
}
