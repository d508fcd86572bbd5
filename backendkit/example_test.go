package backendkit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wproxy/wproxy/backendkit"
)

// A backend behind wproxy: its requests counted in flight, /health and
// /load for the proxy, and a watchdog that drains and exits with status 75
// when memory stays above 90% of the limit for a minute.
func Example() {
	sampler, err := backendkit.NewSampler(backendkit.SamplerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	sampler.Start()
	defer sampler.Stop()

	mux := http.NewServeMux()
	mux.Handle("/health", sampler.HealthHandler(backendkit.HealthConfig{
		Checks: map[string]func(context.Context) error{
			"disk": func(context.Context) error { _, err := os.Stat("/var/lib/app"); return err },
		},
	}))
	mux.Handle("/load", sampler.LoadHandler(backendkit.LoadConfig{MaxInFlight: 100}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	srv := &http.Server{Addr: "127.0.0.1:9001", Handler: sampler.Track(mux)}

	wd := &backendkit.Watchdog{
		Sampler: sampler,
		Rules:   []backendkit.Rule{{Metric: backendkit.MetricMemory, Threshold: 0.9, For: time.Minute}},
		Drain:   srv.Shutdown,
	}
	if err := wd.Start(); err != nil {
		log.Fatal(err)
	}
	defer wd.Stop()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	// Shutdown has begun: on SIGTERM, or by the watchdog, which exits the
	// process once the drain is over.
	<-ctx.Done()
}

// The load endpoint's answer, with the figures fixed for the example.
func ExampleSampler_LoadHandler() {
	sampler, err := backendkit.NewSampler(backendkit.SamplerConfig{
		Adjust: func(f backendkit.Figures) backendkit.Figures {
			f.CPU, f.Memory, f.InFlight = 0.4, 0.31, 12
			return f
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(sampler.LoadHandler(backendkit.LoadConfig{MaxInFlight: 20}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/load")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, " ", string(body))
	// Output: 200 OK {"load":0.6,"cpu":0.4,"mem":0.31,"inflight":12}
}
