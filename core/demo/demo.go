// Package demo runs wproxy's built-in demonstration: three backends on
// loopback and an embedded configuration that balances over them.
package demo

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"text/template"
	"time"
)

//go:embed demo.yaml
var configTemplate string

// Backends are the demo's running backends.
type Backends struct {
	Addrs   []string
	servers []*http.Server
}

// StartBackends starts n backends on free loopback ports. Each answers every
// request with a header X-Demo-Backend naming it and a body line saying who
// served what; /slow?ms=N waits N milliseconds first.
func StartBackends(n int) (*Backends, error) {
	bs := &Backends{}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			bs.Close()
			return nil, fmt.Errorf("demo backend %d: %w", i+1, err)
		}
		name := "backend-" + strconv.Itoa(i+1)
		srv := &http.Server{Handler: Handler(name), ReadHeaderTimeout: 10 * time.Second}
		bs.servers = append(bs.servers, srv)
		bs.Addrs = append(bs.Addrs, ln.Addr().String())
		go srv.Serve(ln)
	}
	return bs, nil
}

// Close stops the backends.
func (bs *Backends) Close() {
	for _, s := range bs.servers {
		s.Close()
	}
}

// Handler is a demo backend's handler.
func Handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
			select {
			case <-time.After(time.Duration(min(ms, 60_000)) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Demo-Backend", name)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s served %s %s\n", name, r.Method, r.URL.RequestURI())
	})
}

// Config returns the demo configuration for a proxy on listen, with its
// admin API on admin ("" for none), in front of the given backends.
func Config(listen, admin string, backends []string) []byte {
	return TLSConfig(listen, admin, backends, "", "")
}

// TLSConfig is Config with the listener served over TLS (HTTP/1.1 and
// HTTP/2) and HTTP/3 with the given certificate and key files; without
// them it is Config.
func TLSConfig(listen, admin string, backends []string, certFile, keyFile string) []byte {
	t := template.Must(template.New("demo.yaml").Parse(configTemplate))
	var b bytes.Buffer
	if err := t.Execute(&b, struct {
		Listen, Admin     string
		Backends          []string
		CertFile, KeyFile string
	}{listen, admin, backends, certFile, keyFile}); err != nil {
		panic(err) // the template is embedded and fixed
	}
	return b.Bytes()
}

// SelfSigned makes a self-signed ECDSA P-256 certificate for localhost and
// 127.0.0.1 (and ::1), valid for a week, and returns it and its key as PEM.
func SelfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "wproxy demo", Organization: []string{"wproxy demo (self-signed)"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		IsCA:         true, BasicConstraintsValid: true, // a client may trust it as its own root
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// WriteSelfSigned writes a SelfSigned certificate and key into dir, as
// cert.pem and key.pem (the key readable by its owner only), and returns
// their paths.
func WriteSelfSigned(dir string) (certFile, keyFile string, err error) {
	c, k, err := SelfSigned()
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, c, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, k, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}
