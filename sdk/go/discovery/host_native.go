//go:build !wasip1

package discovery

import (
	"os"
	"time"

	"github.com/wproxy/wproxy/hostabi"
	"github.com/wproxy/wproxy/hostabi/wire"
)

// hostLog writes to stderr when a module runs natively (in its own tests).
func hostLog(level Level, msg string) {
	os.Stderr.WriteString("discovery " + levelName(level) + ": " + msg + "\n")
}

func levelName(l Level) string {
	switch l {
	case Debug:
		return "debug"
	case Info:
		return "info"
	case Warn:
		return "warn"
	}
	return "error"
}

// nativeHost adapts a test's Host to the calls the SDK makes, through the
// same encodings as the real host, and keeps the last result as it does.
type nativeHost struct {
	h    Host
	last []byte
}

var host = &nativeHost{}

// SetNativeHost installs the host that answers HTTP and SetEndpoints when a
// module runs natively, in its own tests; nil removes it. Without one, every
// request is denied and every set refused. Not safe for concurrent use, like
// a module instance.
func SetNativeHost(h Host) { host.h, host.last = h, nil }

func (n *nativeHost) http(buf []byte) int64 {
	n.last = nil
	if n.h == nil {
		return hostabi.ResultDenied
	}
	req, err := wire.DecodeFetchRequest(buf)
	if err != nil {
		return hostabi.ResultInvalid
	}
	r := &Request{Method: req.Method, URL: req.URL, Header: req.Header, Body: req.Body}
	if req.TimeoutMS > 0 {
		r.Timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	resp, err := n.h.HTTP(r)
	switch {
	case err == ErrHTTPDenied:
		return hostabi.ResultDenied
	case err != nil:
		return hostabi.ResultInvalid
	case resp == nil:
		resp = &Response{Error: "no response"}
	}
	enc, err := wire.AppendFetchResult(nil, &wire.FetchResult{
		Status: uint32(resp.Status), Error: resp.Error, Header: resp.Header, Body: resp.Body,
	})
	if err != nil {
		return hostabi.ResultInvalid
	}
	n.last = enc
	return int64(len(enc))
}

func (n *nativeHost) httpResult(buf []byte) int64 {
	if n.last == nil {
		return hostabi.ResultUnknown
	}
	if len(n.last) > len(buf) {
		return int64(len(n.last))
	}
	return int64(copy(buf, n.last))
}

func (n *nativeHost) setEndpoints(buf []byte) uint32 {
	if n.h == nil {
		return uint32(hostabi.ErrnoInvalid)
	}
	eps, err := wire.DecodeEndpoints(buf)
	if err != nil {
		return uint32(hostabi.ErrnoInvalid)
	}
	if err := n.h.SetEndpoints(eps); err != nil {
		return uint32(hostabi.ErrnoInvalid)
	}
	return uint32(hostabi.ErrnoOK)
}
