package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"testing"
)

// parseBoth parses raw with the fast path and with http.ReadRequest.
func fastParse(raw []byte) (*conn, *http.Request, bool) {
	c := &conn{br: bufio.NewReaderSize(bytes.NewReader(raw), 4096)}
	c.br.Peek(1)
	req, ok := c.fastRequest()
	return c, req, ok
}

var sampleRequests = []string{
	"GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
	"GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n",
	"GET /a/b.html?x=1&y=%20z HTTP/1.1\r\nHost: example.com\r\nuser-agent: curl/8.0\r\naccept: */*\r\n\r\n",
	"POST /submit HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /p? HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"GET /x HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nPragma: no-cache\r\nX-Dup: 1\r\nX-Dup: 2\r\nx-custom-thing:  spaced value \t\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: chrome.example\r\nConnection: keep-alive\r\nCache-Control: max-age=0\r\nsec-ch-ua: \"Chromium\";v=\"120\"\r\nUpgrade-Insecure-Requests: 1\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\nAccept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\nSec-Fetch-Site: none\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: a=1; b=2\r\n\r\n",
	// Left to the standard parser:
	"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"GET /%41 HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET http://h/abs HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\nHost: lf-only\n\n",
	"GET / HTTP/1.1\r\nX-Fold: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
	"GET / HTTP/1.1\r\nHOST: upper\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
}

func TestFastPathTakesOrdinaryRequests(t *testing.T) {
	for i, raw := range sampleRequests {
		_, _, ok := fastParse([]byte(raw))
		if want := i < 8; ok != want {
			t.Errorf("%q: fast path %v, want %v", raw, ok, want)
		}
	}
}

func TestFastPathAllocations(t *testing.T) {
	raw := []byte(sampleRequests[1])
	c := &conn{}
	r := bytes.NewReader(raw)
	c.br = bufio.NewReaderSize(r, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(raw)
		c.br.Reset(r)
		c.br.Peek(1)
		if _, ok := c.fastRequest(); !ok {
			t.Fatal("not taken")
		}
	})
	if allocs > 2 {
		t.Fatalf("%v allocations per request, want at most 2", allocs)
	}
}

func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct {
		name string
		raw  string
	}{{"wrk", sampleRequests[1]}, {"chrome", sampleRequests[7]}} {
		raw := []byte(tc.raw)
		b.Run("fast/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			c := &conn{}
			r := bytes.NewReader(raw)
			c.br = bufio.NewReaderSize(r, 4096)
			for b.Loop() {
				r.Reset(raw)
				c.br.Reset(r)
				c.br.Peek(1)
				c.fastRequest()
			}
		})
		b.Run("net-http/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			r := bytes.NewReader(raw)
			br := bufio.NewReaderSize(r, 4096)
			for b.Loop() {
				r.Reset(raw)
				br.Reset(r)
				http.ReadRequest(br)
			}
		})
	}
}

// FuzzFastRequest checks that whatever the fast path accepts, http.ReadRequest
// accepts too and reads the same request, body and framing.
func FuzzFastRequest(f *testing.F) {
	for _, s := range sampleRequests {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, fast, ok := fastParse(raw)
		if !ok {
			// Nothing may have been consumed.
			if rest, _ := io.ReadAll(c.br); !bytes.Equal(rest, raw) {
				t.Fatalf("declined but consumed input")
			}
			return
		}
		std, err := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(raw), 4096))
		if err != nil {
			t.Fatalf("fast path accepted what net/http refuses (%v):\n%q", err, raw)
		}
		// Re-read with net/http on its own reader to compare the framing.
		sbr := bufio.NewReaderSize(bytes.NewReader(raw), 4096)
		std, _ = http.ReadRequest(sbr)
		check := func(name string, a, b any) {
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("%s differs for %q:\nfast %#v\n std %#v", name, raw, a, b)
			}
		}
		check("Method", fast.Method, std.Method)
		check("RequestURI", fast.RequestURI, std.RequestURI)
		check("Proto", fast.Proto, std.Proto)
		check("ProtoMinor", fast.ProtoMinor, std.ProtoMinor)
		check("Host", fast.Host, std.Host)
		check("URL", *fast.URL, *std.URL)
		check("Header", fast.Header, std.Header)
		check("ContentLength", fast.ContentLength, std.ContentLength)
		check("Close", fast.Close, std.Close)
		check("TransferEncoding", len(fast.TransferEncoding), len(std.TransferEncoding))
		fb, ferr := io.ReadAll(fast.Body)
		sb, serr := io.ReadAll(std.Body)
		check("body", string(fb), string(sb))
		check("body error", ferr == nil, serr == nil)
		frest, _ := io.ReadAll(c.br)
		srest, _ := io.ReadAll(sbr)
		check("bytes after the request", string(frest), string(srest))
	})
}
