package wire

import "errors"

// A probe, written by the host for wproxy_health_evaluate:
//
//	probe := status:u32 error:str latency_ns:u64 expected:u8 address:str
//	         header_count:u16 (name:str value:str){header_count} body_len:u32 body
//
// status is the HTTP status, or 0 when the probe got no response (error then
// says why: a timeout, a refused connection); expected is 1 when the status
// is one of the pool's expected statuses; body is the response body's first
// bytes. A decoder reads the fields it knows; later hosts may append fields.

// Probe is the result of one active health check of one backend.
type Probe struct {
	Status    uint32
	Error     string
	LatencyNS uint64
	Expected  bool
	Address   string
	Header    []Header
	Body      []byte
}

// AppendProbe appends the encoding of p to dst.
func AppendProbe(dst []byte, p *Probe) ([]byte, error) {
	dst = appendU32(dst, p.Status)
	msg := p.Error
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	var err error
	if dst, err = appendStr(dst, msg); err != nil {
		return dst, err
	}
	dst = appendU64(dst, p.LatencyNS)
	if p.Expected {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	if dst, err = appendStr(dst, p.Address); err != nil {
		return dst, errors.New("probe address: " + err.Error())
	}
	if dst, err = appendHeaders(dst, p.Header); err != nil {
		return dst, err
	}
	dst = appendU32(dst, uint32(len(p.Body)))
	return append(dst, p.Body...), nil
}

// DecodeProbe decodes a probe, ignoring fields appended after the body.
func DecodeProbe(buf []byte) (*Probe, error) {
	d := decoder{buf: buf}
	p := &Probe{Status: d.u32(), Error: d.str(), LatencyNS: d.u64()}
	p.Expected = d.u8() == 1
	p.Address = d.str()
	p.Header = d.headers()
	p.Body = d.bytes32()
	if d.err != nil {
		return nil, errors.New("probe: " + d.err.Error() + " at offset " + itoa(d.off))
	}
	return p, nil
}

func appendU64(b []byte, v uint64) []byte {
	return appendU32(appendU32(b, uint32(v)), uint32(v>>32))
}

func (d *decoder) u64() uint64 {
	lo := d.u32()
	hi := d.u32()
	return uint64(lo) | uint64(hi)<<32
}

func (d *decoder) u8() byte {
	if !d.need(1) {
		return 0
	}
	v := d.buf[d.off]
	d.off++
	return v
}
