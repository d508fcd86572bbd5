package wire

import "errors"

// A fetch request, written by a guest for fetch_start:
//
//	request := method:str url:str header_count:u16 (name:str value:str){header_count}
//	           timeout_ms:u32 body_len:u32 body
//
// A fetch result, written by the host for fetch_result:
//
//	result  := status:u32 error:str header_count:u16 (name:str value:str){header_count}
//	           body_len:u32 body
//
// status is the HTTP status, or 0 when the fetch failed before a response
// (error then says why). Header names are canonical (Content-Type).

// Header is one header field of a fetch request or result.
type Header struct{ Name, Value string }

// FetchRequest is an HTTP request a module asks the host to make.
type FetchRequest struct {
	Method    string
	URL       string
	Header    []Header
	TimeoutMS uint32
	Body      []byte
}

// FetchResult is the outcome of a fetch.
type FetchResult struct {
	Status uint32
	Error  string
	Header []Header
	Body   []byte
}

// AppendFetchRequest appends the encoding of r to dst.
func AppendFetchRequest(dst []byte, r *FetchRequest) ([]byte, error) {
	var err error
	if dst, err = appendStr(dst, r.Method); err != nil {
		return dst, errors.New("fetch method: " + err.Error())
	}
	if dst, err = appendStr(dst, r.URL); err != nil {
		return dst, errors.New("fetch url: " + err.Error())
	}
	if dst, err = appendHeaders(dst, r.Header); err != nil {
		return dst, err
	}
	dst = appendU32(dst, r.TimeoutMS)
	dst = appendU32(dst, uint32(len(r.Body)))
	return append(dst, r.Body...), nil
}

// DecodeFetchRequest decodes a fetch request.
func DecodeFetchRequest(buf []byte) (*FetchRequest, error) {
	d := decoder{buf: buf}
	r := &FetchRequest{Method: d.str(), URL: d.str()}
	r.Header = d.headers()
	r.TimeoutMS = d.u32()
	r.Body = d.bytes32()
	if d.err != nil {
		return nil, errors.New("fetch request: " + d.err.Error() + " at offset " + itoa(d.off))
	}
	if d.off != len(buf) {
		return nil, errors.New("fetch request: " + itoa(len(buf)-d.off) + " trailing bytes")
	}
	return r, nil
}

// AppendFetchResult appends the encoding of r to dst.
func AppendFetchResult(dst []byte, r *FetchResult) ([]byte, error) {
	dst = appendU32(dst, r.Status)
	var err error
	msg := r.Error
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	if dst, err = appendStr(dst, msg); err != nil {
		return dst, err
	}
	if dst, err = appendHeaders(dst, r.Header); err != nil {
		return dst, err
	}
	dst = appendU32(dst, uint32(len(r.Body)))
	return append(dst, r.Body...), nil
}

// DecodeFetchResult decodes a fetch result.
func DecodeFetchResult(buf []byte) (*FetchResult, error) {
	d := decoder{buf: buf}
	r := &FetchResult{Status: d.u32(), Error: d.str()}
	r.Header = d.headers()
	r.Body = d.bytes32()
	if d.err != nil {
		return nil, errors.New("fetch result: " + d.err.Error() + " at offset " + itoa(d.off))
	}
	if d.off != len(buf) {
		return nil, errors.New("fetch result: " + itoa(len(buf)-d.off) + " trailing bytes")
	}
	return r, nil
}

func appendHeaders(dst []byte, hs []Header) ([]byte, error) {
	if len(hs) > 0xffff {
		return dst, errors.New("more than 65535 header fields")
	}
	dst = appendU16(dst, uint16(len(hs)))
	var err error
	for _, h := range hs {
		if dst, err = appendStr(dst, h.Name); err != nil {
			return dst, errors.New("header name: " + err.Error())
		}
		if dst, err = appendStr(dst, h.Value); err != nil {
			return dst, errors.New("header " + h.Name + ": " + err.Error())
		}
	}
	return dst, nil
}

func (d *decoder) headers() []Header {
	n := int(d.u16())
	if d.err != nil || n == 0 {
		return nil
	}
	// Each field takes at least 4 bytes: a count that cannot fit is a lie.
	if n*4 > len(d.buf)-d.off {
		d.err = ErrTruncated
		return nil
	}
	hs := make([]Header, n)
	for i := range hs {
		hs[i] = Header{Name: d.str(), Value: d.str()}
	}
	return hs
}

func (d *decoder) bytes32() []byte {
	n := d.u32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(d.buf)-d.off) {
		d.err = ErrTruncated
		return nil
	}
	b := append([]byte(nil), d.buf[d.off:d.off+int(n)]...)
	d.off += int(n)
	return b
}
