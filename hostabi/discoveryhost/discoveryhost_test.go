package discoveryhost

import (
	"context"
	"strings"
	"testing"

	"github.com/wproxy/wproxy/hostabi/wasmhost"
	"github.com/wproxy/wproxy/hostabi/wire"
	"github.com/wproxy/wproxy/internal/wat"
)

func load(t *testing.T) *wasmhost.Module {
	t.Helper()
	rt, err := wasmhost.New(context.Background(), wasmhost.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	mod, err := Load(context.Background(), rt, "host_garbage.wat", wat.Build(t, "testdata/host_garbage.wat"))
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

// Every host function answers garbage with its documented code, and the
// adapter goes on.
func TestHostFunctionsRefuseGarbage(t *testing.T) {
	a, err := New(load(t), []byte("{}"), Options{Endpoints: []string{"http://127.0.0.1:2379"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for range 2 {
		set, changed, err := a.Poll(context.Background())
		if err != nil || changed || set != nil {
			t.Fatalf("poll: %v, %v, %v", set, changed, err)
		}
	}
}

// A configuration the module refuses fails New with the module's errno.
func TestInitErrorFailsNew(t *testing.T) {
	_, err := New(load(t), []byte(`{"x":1}`), Options{})
	if err == nil || !strings.Contains(err.Error(), "wproxy_discovery_init: errno 1") {
		t.Fatalf("err = %v", err)
	}
}

func TestCheckEndpoints(t *testing.T) {
	for _, tc := range []struct {
		eps  []wire.Endpoint
		want string
	}{
		{[]wire.Endpoint{{Address: "10.0.0.1:80", Weight: 1}}, ""},
		{[]wire.Endpoint{{Address: "10.0.0.1", Weight: 1}}, "not host:port"},
		{[]wire.Endpoint{{Address: "10.0.0.1:0", Weight: 1}}, "bad port"},
		{[]wire.Endpoint{{Address: "10.0.0.1:80", Weight: 0}}, "weight 0"},
		{[]wire.Endpoint{{Address: "a:1", Weight: 1}, {Address: "a:1", Weight: 1}}, "twice"},
	} {
		err := CheckEndpoints(tc.eps)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.eps, err, tc.want)
		}
	}
}
