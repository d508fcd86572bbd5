// Command l4proxy is wproxy's L4 proxy (core/l4) for bench/l4/run.sh: one
// listener in front of one pool of the embedded round_robin module, without
// the configuration file the server wiring will read.
//
//	l4proxy -listen 127.0.0.1:19211 -backends 127.0.0.1:19200[,...]
//
// SIGINT or SIGTERM shuts it down (connections get one second to end).
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wproxy/wproxy/core/balancer"
	"github.com/wproxy/wproxy/core/l4"
	"github.com/wproxy/wproxy/hostabi/lbhost"
	"github.com/wproxy/wproxy/hostabi/wasmhost"
	policieswasm "github.com/wproxy/wproxy/policies-wasm"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19211", "address to listen on")
	backends := flag.String("backends", "127.0.0.1:19200", "comma-separated backend addresses")
	policy := flag.String("policy", "round_robin", "embedded balancing module")
	hash := flag.String("hash", "none", "client_ip, client_ip_port or none")
	maxConns := flag.Int("max-conns", 10000, "most client connections at once")
	idle := flag.Duration("idle-timeout", time.Minute, "idle timeout")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	ctx := context.Background()
	rt, err := wasmhost.New(ctx, wasmhost.Config{Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close(ctx)
	wasm, ok := policieswasm.Lookup(*policy)
	if !ok {
		log.Fatalf("no embedded module %q", *policy)
	}
	mod, err := lbhost.Load(ctx, rt, *policy, wasm)
	if err != nil {
		log.Fatal(err)
	}
	var bs []*balancer.Backend
	for _, a := range strings.Split(*backends, ",") {
		bs = append(bs, &balancer.Backend{Address: a, Weight: 1})
	}
	pool, err := balancer.NewPool("bench", mod, []byte("{}"), bs, balancer.Options{Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	p := l4.New(func() *balancer.Pool { return pool }, l4.Config{
		Hash: *hash, MaxConns: *maxConns, IdleTimeout: *idle, Logger: logger,
	})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		p.Shutdown(sctx)
	}()
	if err := p.Serve(ln); !errors.Is(err, net.ErrClosed) {
		log.Fatal(err)
	}
	st := p.Stats()
	logger.Warn("l4proxy done", "accepted", st.Accepted, "connect_failures", st.ConnectFailures, "bytes_in", st.BytesIn, "bytes_out", st.BytesOut)
}
