package lb

import (
	"errors"
	"testing"

	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wire"
)

type recorder struct {
	version uint64
	eps     []Endpoint
	last    Request
}

func (r *recorder) SetEndpoints(v uint64, eps []Endpoint) error {
	if len(eps) == 13 {
		return errors.New("unlucky")
	}
	r.version, r.eps = v, eps
	return nil
}

func (r *recorder) Pick(req Request) int {
	r.last = req
	if req.Seq == 99 {
		panic("boom")
	}
	return len(r.eps) - 1
}

// The exports' logic, driven natively as the host would drive it.
func TestABIFlow(t *testing.T) {
	factory, policy = nil, nil
	if e := initPolicy(nil); e != hostabi.ErrnoInternal {
		t.Fatalf("init without Register: %v", e)
	}
	rec := &recorder{}
	Register(func(cfg []byte) (Policy, error) {
		if string(cfg) == `{"bad":true}` {
			return nil, errors.New("bad config")
		}
		return rec, nil
	})
	defer func() { factory, policy = nil, nil }()
	if got := pick(1, 2, 3, 0); got != pickError {
		t.Fatalf("pick before init = %d", got)
	}
	if e := initPolicy([]byte(`{"bad":true}`)); e != hostabi.ErrnoInvalid {
		t.Fatalf("init with bad config: %v", e)
	}
	if e := initPolicy([]byte(`{}`)); e != hostabi.ErrnoOK {
		t.Fatalf("init: %v", e)
	}
	buf, _ := wire.AppendEndpoints(nil, []wire.Endpoint{{Address: "a:1", Weight: 1}, {Address: "b:1", Weight: 2}})
	if e := setEndpoints(7, buf); e != hostabi.ErrnoOK || rec.version != 7 || len(rec.eps) != 2 {
		t.Fatalf("set: %v %+v", e, rec)
	}
	if e := setEndpoints(8, buf[:5]); e != hostabi.ErrnoInvalid {
		t.Fatalf("set with a truncated buffer: %v", e)
	}
	many := make([]wire.Endpoint, 13)
	for i := range many {
		many[i] = wire.Endpoint{Address: "x:1", Weight: 1}
	}
	buf13, _ := wire.AppendEndpoints(nil, many)
	if e := setEndpoints(9, buf13); e != hostabi.ErrnoUnsupported {
		t.Fatalf("set refused by the policy: %v", e)
	}
	if got := pick(42, 5, 77, hostabi.PickHashPresent); got != 1 || rec.last != (Request{Hash: 42, HashPresent: true, Seq: 5, Random: 77}) {
		t.Fatalf("pick = %d, request %+v", got, rec.last)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	factory = nil
	defer func() {
		factory = nil
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	f := func([]byte) (Policy, error) { return nil, nil }
	Register(f)
	Register(f)
}

func TestIsEmptyConfig(t *testing.T) {
	for in, want := range map[string]bool{"": true, "{}": true, " { } ": true, "null": true, `{"a":1}`: false, "[]": false} {
		if got := IsEmptyConfig([]byte(in)); got != want {
			t.Errorf("%q: %v", in, got)
		}
	}
}
