package wire

import (
	"reflect"
	"strings"
	"testing"
)

func TestEndpointsRoundTrip(t *testing.T) {
	in := []Endpoint{
		{Address: "10.0.0.1:80", Weight: 5, Zone: "a", Meta: map[string]string{"v": "2", "canary": "yes"}},
		{Address: "10.0.0.2:80", Weight: 1},
		{Address: "[::1]:8080", Weight: 1_000_000, Zone: "b"},
	}
	buf, err := AppendEndpoints(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeEndpoints(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
	again, _ := AppendEndpoints(nil, out)
	if string(again) != string(buf) {
		t.Fatal("encoding is not deterministic")
	}
}

func TestEndpointsEmpty(t *testing.T) {
	buf, _ := AppendEndpoints(nil, nil)
	out, err := DecodeEndpoints(buf)
	if err != nil || len(out) != 0 {
		t.Fatalf("got %v, %v", out, err)
	}
}

// A newer host may append fields to a record; an older decoder skips them.
func TestEndpointsSkipsUnknownTrailingFields(t *testing.T) {
	buf, _ := AppendEndpoints(nil, []Endpoint{{Address: "a:1", Weight: 2}, {Address: "b:2", Weight: 3}})
	// Rebuild with 3 extra bytes at the end of each record.
	var ext []byte
	ext = append(ext, buf[:4]...)
	off := 4
	for off < len(buf) {
		size := int(buf[off]) | int(buf[off+1])<<8
		body := buf[off+4 : off+4+size]
		ns := size + 3
		ext = append(ext, byte(ns), byte(ns>>8), 0, 0)
		ext = append(ext, body...)
		ext = append(ext, 0xAA, 0xBB, 0xCC)
		off += 4 + size
	}
	out, err := DecodeEndpoints(ext)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[1].Address != "b:2" || out[1].Weight != 3 {
		t.Fatalf("got %+v", out)
	}
}

func TestDecodeEndpointsErrors(t *testing.T) {
	good, _ := AppendEndpoints(nil, []Endpoint{{Address: "10.0.0.1:80", Weight: 1}})
	tests := []struct {
		name string
		buf  []byte
		want string
	}{
		{"empty", nil, "count: truncated"},
		{"count too large", []byte{0xff, 0xff, 0xff, 0x7f}, "more than"},
		{"count does not fit", []byte{2, 0, 0, 0, 1, 2, 3}, "does not fit"},
		{"size past end", append(append([]byte{}, good[:4]...), 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0), "runs past the end"},
		{"trailing", append(append([]byte{}, good...), 9), "trailing bytes"},
		{"string past record", func() []byte {
			b := append([]byte{}, good...)
			b[8+4] = 0xff // address length
			return b
		}(), "truncated at record offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEndpoints(tt.buf)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func FuzzDecodeEndpoints(f *testing.F) {
	seed, _ := AppendEndpoints(nil, []Endpoint{{Address: "10.0.0.1:80", Weight: 5, Zone: "z", Meta: map[string]string{"k": "v"}}})
	f.Add(seed)
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, buf []byte) {
		eps, err := DecodeEndpoints(buf)
		if err != nil {
			return
		}
		// Whatever decodes must encode again and decode to the same set.
		re, err := AppendEndpoints(nil, eps)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		eps2, err := DecodeEndpoints(re)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if len(eps) != len(eps2) {
			t.Fatalf("len %d != %d", len(eps), len(eps2))
		}
		for i := range eps {
			if eps[i].Address != eps2[i].Address || eps[i].Weight != eps2[i].Weight || eps[i].Zone != eps2[i].Zone || len(eps[i].Meta) != len(eps2[i].Meta) {
				t.Fatalf("endpoint %d differs: %+v vs %+v", i, eps[i], eps2[i])
			}
		}
	})
}

func TestFetchRoundTrip(t *testing.T) {
	req := &FetchRequest{Method: "GET", URL: "http://10.0.0.1:80/load", Header: []Header{{"Accept", "application/json"}}, TimeoutMS: 250, Body: []byte("x")}
	buf, err := AppendFetchRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeFetchRequest(buf)
	if err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("request: %+v, %v", got, err)
	}
	res := &FetchResult{Status: 200, Header: []Header{{"Content-Type", "text/plain"}}, Body: []byte("0.5")}
	buf, _ = AppendFetchResult(nil, res)
	gotRes, err := DecodeFetchResult(buf)
	if err != nil || !reflect.DeepEqual(gotRes, res) {
		t.Fatalf("result: %+v, %v", gotRes, err)
	}
	failed := &FetchResult{Error: "dial tcp: connection refused"}
	buf, _ = AppendFetchResult(nil, failed)
	if got, err := DecodeFetchResult(buf); err != nil || got.Error != failed.Error || got.Status != 0 {
		t.Fatalf("failure: %+v, %v", got, err)
	}
}

func FuzzDecodeFetchRequest(f *testing.F) {
	seed, _ := AppendFetchRequest(nil, &FetchRequest{Method: "GET", URL: "http://a:1/x", Header: []Header{{"A", "b"}}, TimeoutMS: 5})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, buf []byte) {
		r, err := DecodeFetchRequest(buf)
		if err != nil {
			return
		}
		again, err := AppendFetchRequest(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(buf) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzDecodeFetchResult(f *testing.F) {
	seed, _ := AppendFetchResult(nil, &FetchResult{Status: 200, Header: []Header{{"A", "b"}}, Body: []byte("0.3")})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, buf []byte) {
		r, err := DecodeFetchResult(buf)
		if err != nil {
			return
		}
		if _, err := AppendFetchResult(nil, r); err != nil {
			t.Fatal(err)
		}
	})
}

func TestProbeRoundTrip(t *testing.T) {
	p := &Probe{Status: 503, LatencyNS: 1234567, Expected: false, Address: "10.0.0.1:80", Header: []Header{{"X-Load", "0.9"}}, Body: []byte(`{"cpu":0.93}`)}
	buf, err := AppendProbe(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeProbe(buf)
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("%+v %v", got, err)
	}
	// Fields appended by a later host are ignored.
	if got, err := DecodeProbe(append(buf, 1, 2, 3)); err != nil || got.Status != 503 {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := DecodeProbe(buf[:7]); err == nil {
		t.Fatal("truncated probe decoded")
	}
}

func FuzzDecodeProbe(f *testing.F) {
	seed, _ := AppendProbe(nil, &Probe{Status: 200, Expected: true, Address: "a:1", Body: []byte("ok")})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, buf []byte) {
		p, err := DecodeProbe(buf)
		if err != nil {
			return
		}
		if _, err := AppendProbe(nil, p); err != nil {
			t.Fatal(err)
		}
	})
}
