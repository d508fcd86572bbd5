// Package plugin runs discovery adapters as processes of their own, over
// hashicorp/go-plugin with gRPC: for registries whose client needs more than
// a Wasm guest can host (ZooKeeper's session protocol: a long-lived TCP
// connection with heartbeats and watches).
//
// The host side is NewLooker, a discovery.Looker that starts the plugin,
// restarts it when it dies and keeps the last set it sent. The plugin side is
// Serve: a plugin's main() implements Adapter and calls Serve.
//
// The protocol (version 1): after go-plugin's handshake (HandshakeConfig), the
// host calls Init with the source's configuration, then Watch, a server
// stream on which the plugin sends the full set of endpoints whenever it
// changes (the first message is the initial set), or a Set with Error set
// when the registry cannot be reached (the host keeps the last set).
//
// The gRPC service is written by hand, with a JSON codec, instead of being
// generated from a .proto file: protoc is not available where wproxy is
// built, the service has two methods, and go-plugin's gRPC transport carries
// any grpc.ServiceDesc. The .proto equivalent, for a plugin in another
// language (whose calls must use the content-subtype "wproxy-json", i.e.
// Content-Type application/grpc+wproxy-json, with JSON bodies):
//
//	service Discovery {
//	  rpc Init(InitRequest) returns (Empty);    // {"config": "<base64>"}
//	  rpc Watch(Empty) returns (stream Set);    // {"endpoints": [...], "error": "..."}
//	}
package plugin

import (
	"context"
	"encoding/json"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// ProtocolVersion is the version of the plugin protocol.
const ProtocolVersion = 1

// HandshakeConfig is the handshake host and plugin must agree on. The magic
// cookie only keeps a plugin binary from being run by hand by mistake; it is
// not a security measure.
var HandshakeConfig = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "WPROXY_DISCOVERY_PLUGIN",
	MagicCookieValue: "5d0f3a8c-wproxy-discovery-v1",
}

// pluginName is the name the one plugin is dispensed under.
const pluginName = "discovery"

// Endpoint is one backend as a plugin reports it.
type Endpoint struct {
	// Address is host:port. Required.
	Address string `json:"address"`
	// Weight is 1 to 1000000; zero means 1.
	Weight uint32 `json:"weight,omitempty"`
	// Zone is a locality label, if any.
	Zone string `json:"zone,omitempty"`
	// Meta is free-form metadata, if any.
	Meta map[string]string `json:"meta,omitempty"`
}

// Messages of the Discovery service.
type (
	initRequest struct {
		Config []byte `json:"config"`
	}
	empty  struct{}
	setMsg struct {
		Endpoints []Endpoint `json:"endpoints"`
		// Error, when not empty, says the registry cannot be reached: the
		// host keeps its last set and reports the error.
		Error string `json:"error,omitempty"`
	}
)

// codecName is the gRPC content-subtype of the Discovery service's calls.
const codecName = "wproxy-json"

// jsonCodec marshals messages as JSON. It is registered globally under
// codecName; only calls that ask for it (grpc.CallContentSubtype) use it,
// so go-plugin's own protobuf services are unaffected.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return codecName }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// discoveryServer is what the service desc dispatches to.
type discoveryServer interface {
	Init(context.Context, *initRequest) (*empty, error)
	Watch(*empty, grpc.ServerStream) error
}

const serviceName = "wproxy.discovery.v1.Discovery"

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*discoveryServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Init",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			req := new(initRequest)
			if err := dec(req); err != nil {
				return nil, err
			}
			return srv.(discoveryServer).Init(ctx, req)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Watch",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			req := new(empty)
			if err := stream.RecvMsg(req); err != nil {
				return err
			}
			return srv.(discoveryServer).Watch(req, stream)
		},
	}},
}

// grpcPlugin is the go-plugin glue: on the plugin side it registers the
// service around impl; on the host side it returns a *discoveryClient.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	impl Adapter
}

func (p *grpcPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&serviceDesc, &server{impl: p.impl})
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &discoveryClient{cc: cc}, nil
}

// discoveryClient calls the service with the JSON codec.
type discoveryClient struct{ cc *grpc.ClientConn }

func (c *discoveryClient) Init(ctx context.Context, config []byte) error {
	return c.cc.Invoke(ctx, "/"+serviceName+"/Init", &initRequest{Config: config}, new(empty), grpc.CallContentSubtype(codecName))
}

// Watch opens the stream; recv returns each Set.
func (c *discoveryClient) Watch(ctx context.Context) (recv func() (*setMsg, error), err error) {
	st, err := c.cc.NewStream(ctx, &serviceDesc.Streams[0], "/"+serviceName+"/Watch", grpc.CallContentSubtype(codecName))
	if err != nil {
		return nil, err
	}
	if err := st.SendMsg(&empty{}); err != nil {
		return nil, err
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	return func() (*setMsg, error) {
		m := new(setMsg)
		if err := st.RecvMsg(m); err != nil {
			return nil, err
		}
		return m, nil
	}, nil
}
