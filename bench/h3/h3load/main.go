// Command h3load is a small closed-loop HTTP/3 load generator on quic-go's
// client, for bench/h3/run.sh: STREAMS requests in flight at all times,
// spread over CONNS QUIC connections (one http3.Transport each), for
// DURATION. It counts the responses (2xx with the body read to the end) and
// the errors (transport errors and other statuses), and prints one line:
//
//	requests=N errors=N seconds=S req_per_sec=R conns=C streams=N
//
// The certificate is not verified (the bench uses a self-signed one).
//
//	h3load -url https://127.0.0.1:8443/ -c 10 -n 100 -d 5s
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

func main() {
	url := flag.String("url", "https://127.0.0.1:8443/", "the URL to GET")
	conns := flag.Int("c", 10, "QUIC connections")
	streams := flag.Int("n", 100, "requests in flight in all (spread over the connections)")
	duration := flag.Duration("d", 5*time.Second, "how long to load")
	verbose := flag.Bool("v", false, "print the first error of each kind")
	flag.Parse()
	if *conns < 1 || *streams < *conns {
		fmt.Fprintln(os.Stderr, "h3load: need -c >= 1 and -n >= -c")
		os.Exit(2)
	}

	var ok, failed atomic.Int64
	var seen sync.Map
	fail := func(err error) {
		failed.Add(1)
		if *verbose {
			if _, dup := seen.LoadOrStore(err.Error(), true); !dup {
				fmt.Fprintln(os.Stderr, "h3load:", err)
			}
		}
	}

	transports := make([]*http3.Transport, *conns)
	for i := range transports {
		transports[i] = &http3.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			QUICConfig:      &quic.Config{MaxIdleTimeout: 30 * time.Second, KeepAlivePeriod: 10 * time.Second},
		}
	}
	// Open every connection before the clock starts.
	for _, tr := range transports {
		req, err := http.NewRequest(http.MethodGet, *url, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "h3load:", err)
			os.Exit(2)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "h3load: first request:", err)
			os.Exit(1)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *streams; i++ {
		tr := transports[i%*conns]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					if ctx.Err() == nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
						fail(err)
					}
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case err != nil && ctx.Err() != nil:
					// cut off by the end of the run: not counted
				case err != nil:
					fail(err)
				case resp.StatusCode/100 != 2:
					fail(fmt.Errorf("status %d", resp.StatusCode))
				default:
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	for _, tr := range transports {
		tr.Close()
	}
	fmt.Printf("requests=%d errors=%d seconds=%.3f req_per_sec=%.1f conns=%d streams=%d\n",
		ok.Load(), failed.Load(), elapsed, float64(ok.Load())/elapsed, *conns, *streams)
}
