package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/demo"
	"github.com/wproxy/wproxy/internal/gowasm"
)

// selfSigned writes a self-signed certificate valid for names (DNS) and
// 127.0.0.1 into dir, and returns its files and a pool trusting it.
func selfSigned(t *testing.T, dir, name string, names ...string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: names, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	roots = x509.NewCertPool()
	roots.AddCert(c)
	return certFile, keyFile, roots
}

// tlsProxy starts a proxy whose one listener has the given extra lines
// (indented as listener fields) and routes /dead to a backend that refuses
// connections and everything else to backends.
func tlsProxy(t *testing.T, dir, listenerExtra string, backends ...*backend) (string, *Server) {
	t.Helper()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	var sb strings.Builder
	fmt.Fprintf(&sb, "listeners:\n  - address: 127.0.0.1:0\n    routes: [{pool: p}, {path_prefix: /dead, pool: dead}]\n%s", listenerExtra)
	sb.WriteString("pools:\n  dead:\n    backends: [{address: " + dead + "}]\n  p:\n    backends:\n")
	for _, b := range backends {
		fmt.Fprintf(&sb, "      - address: %s\n", b.addr)
	}
	sb.WriteString("wasm:\n  cache_dir: " + gowasm.CacheDir() + "\n")
	_, srv := startProxyIn(t, dir, sb.String())
	return srv.Addrs()[0], srv
}

// echoBackend answers with the request body's length and checksum in
// headers and as many pseudo-random bytes (seed 1) as the request had.
func echoBackend(t *testing.T) *backend {
	return startBackend(t, "echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		got, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Demo-Backend", "echo")
		w.Header().Set("X-Request-Sha", fmt.Sprintf("%x", h.Sum(nil)))
		w.Header().Set("X-Request-Len", fmt.Sprint(got))
		w.Header().Set("X-Seen-Forwarded-Proto", r.Header.Get("X-Forwarded-Proto"))
		io.Copy(w, io.LimitReader(mrand.NewChaCha8([32]byte{1}), got))
	}))
}

func sum(r io.Reader) (int64, string) {
	h := sha256.New()
	n, _ := io.Copy(h, r)
	return n, fmt.Sprintf("%x", h.Sum(nil))
}

// roundTrip posts size pseudo-random bytes (seed 2) to url and checks that
// the backend got them and that the response is size bytes (seed 1).
func roundTrip(t testing.TB, c *http.Client, url string, size int) *http.Response {
	req, _ := http.NewRequest("POST", url, io.LimitReader(mrand.NewChaCha8([32]byte{2}), int64(size)))
	req.ContentLength = int64(size)
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	n, got := sum(resp.Body)
	_, wantResp := sum(io.LimitReader(mrand.NewChaCha8([32]byte{1}), int64(size)))
	_, wantReq := sum(io.LimitReader(mrand.NewChaCha8([32]byte{2}), int64(size)))
	if resp.StatusCode != 200 || n != int64(size) || got != wantResp {
		t.Errorf("%s: status %d, response of %d bytes, checksum ok %v", resp.Proto, resp.StatusCode, n, got == wantResp)
	}
	if resp.Header.Get("X-Request-Len") != fmt.Sprint(size) || resp.Header.Get("X-Request-Sha") != wantReq {
		t.Errorf("%s: backend got %s bytes, checksum ok %v", resp.Proto, resp.Header.Get("X-Request-Len"), resp.Header.Get("X-Request-Sha") == wantReq)
	}
	return resp
}

const mib = 1 << 20

// HTTPS with HTTP/1.1 and HTTP/2 (ALPN): the same routes and backends,
// bodies both ways, Alt-Svc advertising HTTP/3, the connection gauge.
func TestTLSHTTP1AndHTTP2(t *testing.T) {
	dir := t.TempDir()
	_, key, roots := selfSigned(t, dir, "localhost", "localhost")
	b := echoBackend(t)
	addr, srv := tlsProxy(t, dir, "    tls: {cert_file: localhost.pem, key_file: "+filepath.Base(key)+"}\n    http3: true\n", b)
	_, port, _ := net.SplitHostPort(addr)
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	for _, c := range []struct {
		client *http.Client
		major  int
	}{{h1, 1}, {h2, 2}} {
		resp := roundTrip(t, c.client, "https://"+addr+"/upload", mib)
		if resp == nil {
			t.FailNow()
		}
		if resp.ProtoMajor != c.major {
			t.Errorf("protocol %s, want major %d", resp.Proto, c.major)
		}
		if got, want := resp.Header.Get("Alt-Svc"), `h3=":`+port+`"; ma=86400`; got != want {
			t.Errorf("%s: Alt-Svc %q, want %q", resp.Proto, got, want)
		}
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("%s: TLS state %+v", resp.Proto, resp.TLS)
		}
		if got := resp.Header.Get("X-Seen-Forwarded-Proto"); got != "https" {
			t.Errorf("%s: the backend saw X-Forwarded-Proto %q, want https", resp.Proto, got)
		}
		resp, body := get(t, c.client, "https://"+addr+"/dead")
		if resp.StatusCode != 502 || !strings.Contains(body, "connection refused") {
			t.Errorf("%s: /dead: %d %q", resp.Proto, resp.StatusCode, body)
		}
	}
	// Two clients with a kept-alive connection each.
	srv.mu.Lock()
	l := srv.listeners[listenerKey(srv.Config().Listeners[0])]
	srv.mu.Unlock()
	if n := l.conns(); n != 2 {
		t.Errorf("listener connections %d, want 2", n)
	}
	// TLS 1.1 is refused.
	if _, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
}

// Several certificates: the client's server name picks; an unknown name
// gets the first.
func TestTLSSNI(t *testing.T) {
	dir := t.TempDir()
	ca, ka, _ := selfSigned(t, dir, "a", "a.test")
	cb, kb, _ := selfSigned(t, dir, "b", "b.test")
	addr, _ := tlsProxy(t, dir, fmt.Sprintf("    tls:\n      certificates:\n        - {cert_file: %s, key_file: %s}\n        - {cert_file: %s, key_file: %s}\n", ca, ka, cb, kb),
		startBackend(t, "a", nil))
	for _, c := range []struct{ sni, want string }{{"a.test", "a"}, {"b.test", "b"}, {"other.test", "a"}} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: c.sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		got := conn.ConnectionState().PeerCertificates[0].Subject.CommonName
		conn.Close()
		if got != c.want {
			t.Errorf("server name %s: certificate %s, want %s", c.sni, got, c.want)
		}
	}
}

// h2c: a plain listener speaks HTTP/2 with prior knowledge, and HTTP/1.1.
func TestH2C(t *testing.T) {
	b := echoBackend(t)
	addr, _ := tlsProxy(t, t.TempDir(), "    h2c: true\n", b)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &p}}
	resp := roundTrip(t, h2c, "http://"+addr+"/", mib)
	if resp == nil || resp.ProtoMajor != 2 {
		t.Fatalf("h2c response %v", resp)
	}
	resp = roundTrip(t, &http.Client{Transport: &http.Transport{}}, "http://"+addr+"/", 1000)
	if resp == nil || resp.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1 response %v", resp)
	}
}

// HTTP/3 on the UDP port of the TLS listener: headers, bodies both ways,
// concurrent streams on one connection, a dead backend's 502.
func TestHTTP3(t *testing.T) {
	dir := t.TempDir()
	cert, key, roots := selfSigned(t, dir, "h3", "localhost")
	b := echoBackend(t)
	addr, _ := tlsProxy(t, dir, fmt.Sprintf("    tls: {cert_file: %s, key_file: %s}\n    http3: true\n", cert, key), b)
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := "https://" + addr

	resp := roundTrip(t, c, url+"/upload", mib)
	if resp == nil {
		t.FailNow()
	}
	if resp.ProtoMajor != 3 || resp.Header.Get("X-Demo-Backend") != "echo" {
		t.Fatalf("proto %s, X-Demo-Backend %q", resp.Proto, resp.Header.Get("X-Demo-Backend"))
	}
	if resp.Header.Get("Alt-Svc") != "" {
		t.Errorf("HTTP/3 response with Alt-Svc %q", resp.Header.Get("Alt-Svc"))
	}

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { roundTrip(t, c, url+"/concurrent", 64<<10) })
	}
	wg.Wait()

	resp, body := get(t, c, url+"/dead")
	if resp.StatusCode != 502 || !strings.Contains(body, "connection refused") {
		t.Errorf("/dead over HTTP/3: %d %q", resp.StatusCode, body)
	}
}

// Reload keeps a TLS listener (same socket, new routes) and refuses to
// change its protocols.
func TestTLSReload(t *testing.T) {
	dir := t.TempDir()
	cert, key, roots := selfSigned(t, dir, "r", "localhost")
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := free.Addr().String()
	free.Close()
	base := "listeners:\n  - address: " + addr + "\n    routes: [{pool: p}]\n    tls: {cert_file: " + cert + ", key_file: " + key + "}\n%s" +
		"pools:\n  p:\n    backends: [{address: %s}]\nwasm:\n  cache_dir: " + gowasm.CacheDir() + "\n"
	_, srv := startProxyIn(t, dir, fmt.Sprintf(base, "", a.addr))
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	if resp, _ := get(t, c, "https://"+addr+"/"); resp.Header.Get("X-Demo-Backend") != "a" || resp.ProtoMajor != 2 {
		t.Fatalf("before reload: %s %q", resp.Proto, resp.Header.Get("X-Demo-Backend"))
	}
	if err := srv.Reload(context.Background(), parseConfig(t, dir, fmt.Sprintf(base, "", b.addr))); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, c, "https://"+addr+"/"); resp.Header.Get("X-Demo-Backend") != "b" {
		t.Fatalf("after reload: %q", resp.Header.Get("X-Demo-Backend"))
	}
	err := srv.Reload(context.Background(), parseConfig(t, dir, fmt.Sprintf(base, "    http3: true\n", b.addr)))
	if err == nil || !strings.Contains(err.Error(), "cannot change on reload; give it another address") || !strings.Contains(err.Error(), "listeners[0]") {
		t.Fatalf("changing http3 on reload: %v", err)
	}
}

// Configuration errors are located at the field.
func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := selfSigned(t, dir, "c", "localhost")
	_, otherKey, _ := selfSigned(t, dir, "d", "localhost")
	pools := "pools:\n  p:\n    backends: [{address: 127.0.0.1:1}]\n"
	for _, c := range []struct{ listener, want string }{
		{"routes: [{pool: p}]\n    tls: {cert_file: missing.pem, key_file: " + key + "}",
			"listeners[0].tls.cert_file: stat " + filepath.Join(dir, "missing.pem") + ": no such file or directory"},
		{"routes: [{pool: p}]\n    tls: {certificates: [{cert_file: " + cert + ", key_file: " + otherKey + "}]}",
			"listeners[0].tls.certificates[0].cert_file: " + cert + " and " + otherKey + " do not load as a certificate and its key"},
		{"routes: [{pool: p}]\n    tls: {cert_file: " + cert + "}", "listeners[0].tls: cert_file and key_file go together"},
		{"routes: [{pool: p}]\n    http3: true", "listeners[0].http3: http3 needs tls"},
		{"routes: [{pool: p}]\n    h2c: true\n    tls: {cert_file: " + cert + ", key_file: " + key + "}", "listeners[0].h2c: h2c is for a plain listener"},
		{"mode: tcp\n    pool: p\n    tls: {cert_file: " + cert + ", key_file: " + key + "}", "listeners[0]: tls, h2c and http3 are for mode http"},
		{"routes: [{pool: p}]\n    tls: {cert: x}", `unknown field "cert" in a listener's tls`},
	} {
		yaml := "listeners:\n  - address: 127.0.0.1:0\n    " + c.listener + "\n" + pools
		_, err := config.Parse([]byte(yaml), filepath.Join(dir, "test.yaml"), dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\nerror %v\nwant %q", yaml, err, c.want)
		}
	}
}

// An http3 listener whose UDP port is taken does not start, and says why.
func TestHTTP3PortTaken(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := selfSigned(t, dir, "p", "localhost")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	addr := pc.LocalAddr().String()
	yaml := "listeners:\n  - address: " + addr + "\n    routes: [{pool: p}]\n    tls: {cert_file: " + cert + ", key_file: " + key + "}\n    http3: true\n" +
		"pools:\n  p:\n    backends: [{address: 127.0.0.1:1}]\nwasm:\n  cache_dir: " + gowasm.CacheDir() + "\n"
	srv, err := Build(context.Background(), parseConfig(t, dir, yaml), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	err = srv.Start()
	if err == nil || !strings.Contains(err.Error(), "listeners[0].address: cannot listen: udp (http3)") {
		t.Fatalf("start: %v", err)
	}
	// The TCP port was released.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("TCP port still bound: %v", err)
	}
	ln.Close()
}

// The demo's -tls configuration serves HTTPS and HTTP/3 with its
// self-signed certificate.
func TestDemoTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, err := demo.WriteSelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	pemCert, _ := os.ReadFile(cert)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemCert)
	backends, err := demo.StartBackends(3)
	if err != nil {
		t.Fatal(err)
	}
	defer backends.Close()
	yaml := string(demo.TLSConfig("127.0.0.1:0", "", backends.Addrs, cert, key)) + "wasm:\n  cache_dir: " + gowasm.CacheDir() + "\n"
	_, srv := startProxyIn(t, dir, yaml)
	addr := srv.Addrs()[0]
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.Close()
	for _, c := range []*http.Client{h2, {Transport: tr}} {
		resp, body := get(t, c, "https://"+addr+"/hello")
		if resp.StatusCode != 200 || !bytes.Contains([]byte(body), []byte("served GET /hello")) || resp.ProtoMajor < 2 {
			t.Fatalf("%s: %d %q", resp.Proto, resp.StatusCode, body)
		}
	}
}
