// Package demo runs wproxy's built-in demonstration: three backends on
// loopback and an embedded configuration that balances over them.
package demo

import (
	"bytes"
	_ "embed"
	"fmt"
	"net"
	"net/http"
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
	t := template.Must(template.New("demo.yaml").Parse(configTemplate))
	var b bytes.Buffer
	if err := t.Execute(&b, struct {
		Listen, Admin string
		Backends      []string
	}{listen, admin, backends}); err != nil {
		panic(err) // the template is embedded and fixed
	}
	return b.Bytes()
}
