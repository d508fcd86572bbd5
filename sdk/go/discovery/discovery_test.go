package discovery

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/wproxy/wproxy/hostabi"
)

type fakeHost struct {
	reqs []*Request
	resp *Response
	err  error
	sets [][]Endpoint
	bad  bool
}

func (h *fakeHost) HTTP(req *Request) (*Response, error) {
	h.reqs = append(h.reqs, req)
	return h.resp, h.err
}

func (h *fakeHost) SetEndpoints(eps []Endpoint) error {
	if h.bad {
		return errors.New("refused")
	}
	h.sets = append(h.sets, eps)
	return nil
}

// A request and its response cross the encodings intact, including a
// response larger than the SDK's first buffer.
func TestHTTP(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 10000)
	h := &fakeHost{resp: &Response{Status: 200, Header: []Header{{Name: "Content-Type", Value: "application/json"}}, Body: body}}
	SetNativeHost(h)
	defer SetNativeHost(nil)
	resp, err := HTTP(&Request{Method: "POST", URL: "http://127.0.0.1:2379/v3/kv/range", Header: []Header{{Name: "Authorization", Value: "tok"}}, Body: []byte("{}"), Timeout: 1500 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || !bytes.Equal(resp.Body, body) || resp.HeaderValue("content-type") != "application/json" {
		t.Fatalf("%d %q %d bytes", resp.Status, resp.Header, len(resp.Body))
	}
	got := h.reqs[0]
	want := &Request{Method: "POST", URL: "http://127.0.0.1:2379/v3/kv/range", Header: []Header{{Name: "Authorization", Value: "tok"}}, Body: []byte("{}"), Timeout: 2 * time.Millisecond}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("host got %+v, want %+v", got, want)
	}

	h.resp = &Response{Error: "connection refused"}
	if resp, err := HTTP(&Request{URL: "http://127.0.0.1:1/"}); err != nil || resp.Status != 0 || resp.Error != "connection refused" {
		t.Fatalf("%+v %v", resp, err)
	}
	h.err = ErrHTTPDenied
	if _, err := HTTP(&Request{URL: "http://10.0.0.1/"}); err != ErrHTTPDenied {
		t.Fatal(err)
	}
}

func TestSetEndpoints(t *testing.T) {
	h := &fakeHost{}
	SetNativeHost(h)
	defer SetNativeHost(nil)
	eps := []Endpoint{{Address: "10.0.0.1:80", Weight: 2, Zone: "a", Meta: map[string]string{"k": "v"}}}
	if err := SetEndpoints(eps); err != nil {
		t.Fatal(err)
	}
	if err := SetEndpoints(nil); err != nil {
		t.Fatal(err)
	}
	if len(h.sets) != 2 || !reflect.DeepEqual(h.sets[0], eps) || len(h.sets[1]) != 0 {
		t.Fatalf("%+v", h.sets)
	}
	h.bad = true
	if err := SetEndpoints(eps); err != ErrSetInvalid {
		t.Fatal(err)
	}
}

type pollFunc func() error

func (f pollFunc) Poll() error { return f() }

// The exports map the factory's and Poll's errors to the ABI's errnos.
func TestExports(t *testing.T) {
	defer func() { factory, source = nil, nil }()
	factory, source = nil, nil
	if e := poll(); e != hostabi.ErrnoInternal {
		t.Fatal("poll before init:", e)
	}
	if e := initSource([]byte("{}")); e != hostabi.ErrnoInternal {
		t.Fatal("init without Register:", e)
	}
	var fail error
	Register(func(config []byte) (Source, error) {
		if string(config) != `{"ok":true}` {
			return nil, errors.New("bad config")
		}
		return pollFunc(func() error {
			if fail != nil {
				panic(fail)
			}
			return nil
		}), nil
	})
	if e := initSource([]byte(`{}`)); e != hostabi.ErrnoInvalid {
		t.Fatal("bad config:", e)
	}
	if e := initSource([]byte(`{"ok":true}`)); e != hostabi.ErrnoOK {
		t.Fatal("init:", e)
	}
	if e := poll(); e != hostabi.ErrnoOK {
		t.Fatal("poll:", e)
	}
	fail = errors.New("boom")
	if e := poll(); e != hostabi.ErrnoInternal {
		t.Fatal("panicking poll:", e)
	}
	source = pollFunc(func() error { return errors.New("registry down") })
	if e := poll(); e != hostabi.ErrnoInternal {
		t.Fatal("failing poll:", e)
	}
}
