// Command goproxy is the reference point of bench/peers: the few lines of Go
// a reverse proxy takes with the standard library (httputil.ReverseProxy over
// http.Transport), round robin over the backends given as arguments.
//
//	goproxy LISTEN BACKEND...
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
)

func main() {
	if len(os.Args) < 3 {
		log.Fatal("usage: goproxy LISTEN BACKEND...")
	}
	var targets []*url.URL
	for _, b := range os.Args[2:] {
		targets = append(targets, &url.URL{Scheme: "http", Host: b})
	}
	var n atomic.Uint64
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(targets[n.Add(1)%uint64(len(targets))])
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 256},
	}
	log.Fatal(http.ListenAndServe(os.Args[1], rp))
}
