// Package wire encodes and decodes the buffers that cross the Wasm boundary.
//
// The host encodes, a guest decodes; both sides import this package, which has
// no dependencies so that it compiles for GOOS=wasip1 as well as for the host.
// The layouts are specified in ../ABI.md. All integers are little-endian.
//
// An endpoint set is
//
//	set    := count:u32 record{count}
//	record := size:u32 body            (size = len(body))
//	body   := weight:u32 address:str zone:str meta_count:u16 (key:str value:str){meta_count} future...
//	str    := len:u16 bytes
//
// A decoder reads the fields it knows from a record's body and skips the rest,
// so fields appended by a newer host do not break older modules.
package wire

import (
	"errors"
	"math"
	"strconv"
)

// The package avoids fmt, sort and encoding/binary: it is compiled into every
// Go guest, where each imported package costs module size and compile time.

// MaxEndpoints bounds the number of endpoints in one set.
const MaxEndpoints = 1 << 20

// Endpoint is one member of an endpoint set as a module sees it.
type Endpoint struct {
	// Address is host:port.
	Address string
	// Weight is relative to the other endpoints' weights; at least 1.
	Weight uint32
	// Zone is a free-form locality label; empty when unset.
	Zone string
	// Meta is free-form metadata from the pool's configuration or discovery.
	Meta map[string]string
}

// ErrTruncated reports a buffer that ends inside a field.
var ErrTruncated = errors.New("truncated")

// AppendEndpoints appends the encoding of eps to dst and returns the result.
// Meta keys are written in sorted order so that equal sets encode equally.
func AppendEndpoints(dst []byte, eps []Endpoint) ([]byte, error) {
	if len(eps) > MaxEndpoints {
		return dst, errors.New("endpoint set: " + itoa(len(eps)) + " endpoints, more than " + itoa(MaxEndpoints))
	}
	dst = appendU32(dst, uint32(len(eps)))
	var keys []string
	for i, ep := range eps {
		if len(ep.Meta) > math.MaxUint16 {
			return dst, errors.New("endpoint " + itoa(i) + ": " + itoa(len(ep.Meta)) + " meta entries, more than 65535")
		}
		sizeAt := len(dst)
		dst = appendU32(dst, 0)
		dst = appendU32(dst, ep.Weight)
		var err error
		if dst, err = appendStr(dst, ep.Address); err != nil {
			return dst, errors.New("endpoint " + itoa(i) + " address: " + err.Error())
		}
		if dst, err = appendStr(dst, ep.Zone); err != nil {
			return dst, errors.New("endpoint " + itoa(i) + " zone: " + err.Error())
		}
		dst = appendU16(dst, uint16(len(ep.Meta)))
		keys = keys[:0]
		for k := range ep.Meta {
			keys = append(keys, k)
		}
		sortStrings(keys)
		for _, k := range keys {
			if dst, err = appendStr(dst, k); err != nil {
				return dst, errors.New("endpoint " + itoa(i) + " meta key: " + err.Error())
			}
			if dst, err = appendStr(dst, ep.Meta[k]); err != nil {
				return dst, errors.New("endpoint " + itoa(i) + " meta " + strconv.Quote(k) + ": " + err.Error())
			}
		}
		putU32(dst[sizeAt:], uint32(len(dst)-sizeAt-4))
	}
	return dst, nil
}

func appendStr(dst []byte, s string) ([]byte, error) {
	if len(s) > math.MaxUint16 {
		return dst, errors.New(itoa(len(s)) + " bytes, more than 65535")
	}
	dst = appendU16(dst, uint16(len(s)))
	return append(dst, s...), nil
}

// DecodeEndpoints decodes an endpoint set. Errors name the endpoint and the
// byte offset where decoding stopped; the buffer is not retained.
func DecodeEndpoints(buf []byte) ([]Endpoint, error) {
	d := decoder{buf: buf}
	n := d.u32()
	if d.err != nil {
		return nil, errors.New("endpoint set: count: " + d.err.Error())
	}
	if n > MaxEndpoints {
		return nil, errors.New("endpoint set: count " + utoa(n) + " is more than " + itoa(MaxEndpoints))
	}
	// Each record takes at least 14 bytes; a count that cannot fit is a lie.
	if uint64(n)*14 > uint64(len(buf)-4) {
		return nil, errors.New("endpoint set: count " + utoa(n) + " does not fit in " + itoa(len(buf)) + " bytes")
	}
	eps := make([]Endpoint, n)
	for i := range eps {
		start := d.off
		size := d.u32()
		if d.err != nil {
			return nil, errors.New(at(i, start) + "size: " + d.err.Error())
		}
		if uint64(size) > uint64(len(buf)-d.off) {
			return nil, errors.New(at(i, start) + "size " + utoa(size) + " runs past the end (" + itoa(len(buf)-d.off) + " bytes left)")
		}
		r := decoder{buf: buf[d.off : d.off+int(size)]}
		ep := &eps[i]
		ep.Weight = r.u32()
		ep.Address = r.str()
		ep.Zone = r.str()
		m := r.u16()
		if r.err == nil && m > 0 {
			ep.Meta = make(map[string]string, m)
			for j := 0; j < int(m) && r.err == nil; j++ {
				k := r.str()
				v := r.str()
				ep.Meta[k] = v
			}
		}
		if r.err != nil {
			return nil, errors.New(at(i, start) + r.err.Error() + " at record offset " + itoa(r.off))
		}
		d.off += int(size)
	}
	if d.off != len(buf) {
		return nil, errors.New("endpoint set: " + itoa(len(buf)-d.off) + " trailing bytes after " + utoa(n) + " endpoints")
	}
	return eps, nil
}

type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.buf)-d.off < n {
		d.err = ErrTruncated
		return false
	}
	return true
}

func (d *decoder) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	b := d.buf[d.off:]
	v := uint16(b[0]) | uint16(b[1])<<8
	d.off += 2
	return v
}

func (d *decoder) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	b := d.buf[d.off:]
	v := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	d.off += 4
	return v
}

func (d *decoder) str() string {
	n := int(d.u16())
	if !d.need(n) {
		return ""
	}
	s := string(d.buf[d.off : d.off+n])
	d.off += n
	return s
}

func appendU16(b []byte, v uint16) []byte { return append(b, byte(v), byte(v>>8)) }

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func itoa(v int) string    { return strconv.Itoa(v) }
func utoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func at(i, off int) string { return "endpoint " + itoa(i) + " at offset " + itoa(off) + ": " }

// sortStrings is an insertion sort: meta maps are small.
func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
