package plugin

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Adapter is what a discovery plugin implements.
type Adapter interface {
	// Init checks and takes the source's configuration (as the operator
	// wrote it, JSON for the plugins in this repository). An error is a
	// configuration error: the host fails the source with its message, so it
	// should name the field.
	Init(config []byte) error
	// Watch sends the full set of endpoints first and then whenever it
	// changes, until ctx ends; send(nil, err) says the registry cannot be
	// reached (the host keeps the last set; the next send of a set clears
	// it). Watch should reconnect by itself; when it returns, the host
	// restarts the plugin.
	Watch(ctx context.Context, send func([]Endpoint, error)) error
}

// stderr is the process's standard error as it was before Serve, which
// go-plugin redirects: the host reads it and parses its JSON lines as log
// records.
var stderr = os.Stderr

// Logger returns a logger for a plugin: JSON lines in go-plugin's (hclog's)
// format on the plugin's standard error, which the host logs with their
// level and attributes through its own logger.
func Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.Attr{} // the host stamps records itself
			case slog.LevelKey:
				lvl, _ := a.Value.Any().(slog.Level)
				name := "info"
				switch {
				case lvl < slog.LevelInfo:
					name = "debug"
				case lvl >= slog.LevelError:
					name = "error"
				case lvl >= slog.LevelWarn:
					name = "warn"
				}
				return slog.String("@level", name)
			case slog.MessageKey:
				a.Key = "@message"
			}
			return a
		},
	}))
}

// Serve serves impl as a discovery plugin; it returns when the host is done
// with the plugin. A plugin's main() is
//
//	func main() { plugin.Serve(&myAdapter{}) }
//
// Run by hand, without the host's handshake, it says so and exits.
func Serve(impl Adapter) {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: HandshakeConfig,
		Plugins:         goplugin.PluginSet{pluginName: &grpcPlugin{impl: impl}},
		GRPCServer:      goplugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "go-plugin", Level: hclog.Warn, Output: stderr, JSONFormat: true,
		}),
	})
}

// server adapts an Adapter to the gRPC service.
type server struct {
	impl Adapter
	mu   sync.Mutex
	init bool
}

func (s *server) Init(_ context.Context, req *initRequest) (*empty, error) {
	if err := s.impl.Init(req.Config); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.mu.Lock()
	s.init = true
	s.mu.Unlock()
	return &empty{}, nil
}

func (s *server) Watch(_ *empty, stream grpc.ServerStream) error {
	s.mu.Lock()
	ok := s.init
	s.mu.Unlock()
	if !ok {
		return status.Error(codes.FailedPrecondition, "Watch before a successful Init")
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var (
		mu      sync.Mutex
		sendErr error
	)
	send := func(eps []Endpoint, err error) {
		m := &setMsg{Endpoints: eps}
		if err != nil {
			m = &setMsg{Error: err.Error()}
		}
		if m.Endpoints == nil && err == nil {
			m.Endpoints = []Endpoint{}
		}
		mu.Lock()
		defer mu.Unlock()
		if sendErr != nil || ctx.Err() != nil {
			return
		}
		if sendErr = stream.SendMsg(m); sendErr != nil {
			cancel() // the host is gone: end Watch
		}
	}
	err := s.impl.Watch(ctx, send)
	mu.Lock()
	defer mu.Unlock()
	if sendErr != nil {
		return sendErr
	}
	if err == nil {
		err = errors.New("adapter's Watch returned")
	}
	if stream.Context().Err() != nil {
		return stream.Context().Err()
	}
	return status.Error(codes.Unavailable, err.Error())
}
