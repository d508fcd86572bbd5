package server

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/wproxy/wproxy/internal/gowasm"
)

// grpcBackend is a plaintext gRPC server with the standard health service,
// counting the unary calls it serves.
type grpcBackend struct {
	addr   string
	health *health.Server
	calls  atomic.Int64
	bad    atomic.Value // a problem with the metadata a call arrived with
}

func startGRPCBackend(t *testing.T) *grpcBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gb := &grpcBackend{addr: ln.Addr().String(), health: health.NewServer()}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		gb.calls.Add(1)
		md, _ := metadata.FromIncomingContext(ctx)
		if ct := md.Get("content-type"); len(ct) == 0 || !strings.HasPrefix(ct[0], "application/grpc") {
			gb.bad.Store("content-type " + strings.Join(ct, ","))
		}
		if xff := md.Get("x-forwarded-for"); len(xff) == 0 || xff[0] != "127.0.0.1" {
			gb.bad.Store("x-forwarded-for " + strings.Join(xff, ","))
		}
		if info.FullMethod != "/grpc.health.v1.Health/Check" {
			gb.bad.Store("method " + info.FullMethod)
		}
		if r, ok := req.(*healthpb.HealthCheckRequest); ok && r.Service == "late-error" {
			// A header, then the status and metadata in real trailers
			// (not a trailers-only answer).
			grpc.SendHeader(ctx, metadata.Pairs("x-early", "1"))
			grpc.SetTrailer(ctx, metadata.Pairs("x-trail", "yes"))
			return nil, status.Error(codes.FailedPrecondition, "late")
		}
		return handler(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, gb.health)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return gb
}

// TestGRPCThroughH2C sends gRPC calls through an h2c listener to a pool with
// upstream_protocol h2c: unary answers and their status trailers, a server
// stream, balancing, and a backend that is down.
func TestGRPCThroughH2C(t *testing.T) {
	b1, b2 := startGRPCBackend(t), startGRPCBackend(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	yaml := `listeners:
  - address: 127.0.0.1:0
    h2c: true
    routes: [{pool: g}, {host: dead.test, pool: dead}]
pools:
  g:
    upstream_protocol: h2c
    backends: [{address: ` + b1.addr + `}, {address: ` + b2.addr + `}]
  dead:
    upstream_protocol: h2c
    backends: [{address: ` + dead + `}]
wasm:
  cache_dir: ` + gowasm.CacheDir() + "\n"
	_, srv := startProxy(t, yaml)
	dial := func(opts ...grpc.DialOption) healthpb.HealthClient {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
		conn, err := grpc.NewClient(srv.Addrs()[0], opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return healthpb.NewHealthClient(conn)
	}
	client := dial()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Unary calls answer SERVING and are balanced over both backends.
	const n = 10
	for i := range n {
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("check %d: %v", i, resp.Status)
		}
	}
	c1, c2 := b1.calls.Load(), b2.calls.Load()
	if c1+c2 != n || c1 < n/2-1 || c2 < n/2-1 {
		t.Errorf("calls by backend: %d and %d, want about %d each", c1, c2, n/2)
	}
	for _, b := range []*grpcBackend{b1, b2} {
		if bad := b.bad.Load(); bad != nil {
			t.Errorf("backend %s got a call with %v", b.addr, bad)
		}
	}

	// A status in the trailers comes through.
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("check of an unknown service: %v, want NotFound", err)
	}

	var hdr, trl metadata.MD
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "late-error"}, grpc.Header(&hdr), grpc.Trailer(&trl))
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != "late" {
		t.Errorf("status sent in trailers: %v, want FailedPrecondition", err)
	}
	if hdr.Get("x-early") == nil || trl.Get("x-trail") == nil {
		t.Errorf("header %v, trailer %v: want x-early and x-trail", hdr, trl)
	}

	// A server stream delivers each update as it happens.
	for _, b := range []*grpcBackend{b1, b2} {
		b.health.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	stream, err := client.Watch(wctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("first update: %v %v", m, err)
	}
	for _, b := range []*grpcBackend{b1, b2} {
		b.health.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	}
	if m, err := stream.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("second update: %v %v", m, err)
	}
	wcancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("after cancelling the watch: %v", err)
	}

	// A backend that is down: the proxy's 502 is Unavailable to gRPC.
	_, err = dial(grpc.WithAuthority("dead.test")).Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("check through a dead backend: %v, want Unavailable", err)
	}
}
