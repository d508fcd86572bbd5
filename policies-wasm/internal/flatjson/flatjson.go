// Package flatjson decodes flat JSON objects — string keys, values that are
// numbers, strings, booleans or null — which is all the default modules'
// configurations and the load endpoint's answers need. It exists because
// encoding/json adds 1.4 MB to a Go module (3.3 MB instead of 1.9 MB), and a
// module's size is its compile time.
package flatjson

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// Kind is the type of a value.
type Kind byte

// Kinds.
const (
	Null Kind = iota
	Number
	String
	Bool
)

// Value is one value of an object.
type Value struct {
	Kind Kind
	Num  float64
	Str  string
	Bool bool
}

// Object is a decoded object.
type Object map[string]Value

// Parse decodes data, which must be one JSON object whose values are not
// objects or arrays. Duplicate keys are an error.
func Parse(data []byte) (Object, error) {
	p := parser{b: data}
	p.space()
	if !p.eat('{') {
		return nil, p.errorf("want an object")
	}
	obj := Object{}
	p.space()
	if p.eat('}') {
		return obj, p.end()
	}
	for {
		p.space()
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.eat(':') {
			return nil, p.errorf("want ':' after key " + strconv.Quote(key))
		}
		p.space()
		v, err := p.value()
		if err != nil {
			return nil, errors.New(strconv.Quote(key) + ": " + err.Error())
		}
		if _, dup := obj[key]; dup {
			return nil, errors.New("key " + strconv.Quote(key) + " appears twice")
		}
		obj[key] = v
		p.space()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return obj, p.end()
		}
		return nil, p.errorf("want ',' or '}'")
	}
}

// Check returns an error naming the first key of o that is not in known.
func (o Object) Check(known ...string) error {
next:
	for k := range o {
		for _, n := range known {
			if k == n {
				continue next
			}
		}
		return errors.New("unknown field " + strconv.Quote(k))
	}
	return nil
}

// Number returns the number at key, def when absent, and an error when the
// value is not a number.
func (o Object) Number(key string, def float64) (float64, error) {
	v, ok := o[key]
	if !ok || v.Kind == Null {
		return def, nil
	}
	if v.Kind != Number {
		return 0, errors.New(strconv.Quote(key) + " must be a number")
	}
	return v.Num, nil
}

// Int returns the whole number at key within [lo, hi], def when absent.
func (o Object) Int(key string, def, lo, hi int64) (int64, error) {
	f, err := o.Number(key, float64(def))
	if err != nil {
		return 0, err
	}
	n := int64(f)
	if float64(n) != f || n < lo || n > hi {
		return 0, errors.New(strconv.Quote(key) + " must be a whole number from " + strconv.FormatInt(lo, 10) + " to " + strconv.FormatInt(hi, 10))
	}
	return n, nil
}

// String returns the string at key, def when absent.
func (o Object) String(key, def string) (string, error) {
	v, ok := o[key]
	if !ok || v.Kind == Null {
		return def, nil
	}
	if v.Kind != String {
		return "", errors.New(strconv.Quote(key) + " must be a string")
	}
	return v.Str, nil
}

type parser struct {
	b   []byte
	off int
}

func (p *parser) errorf(msg string) error {
	return errors.New(msg + " at offset " + strconv.Itoa(p.off))
}

func (p *parser) space() {
	for p.off < len(p.b) {
		switch p.b[p.off] {
		case ' ', '\t', '\n', '\r':
			p.off++
		default:
			return
		}
	}
}

func (p *parser) eat(c byte) bool {
	if p.off < len(p.b) && p.b[p.off] == c {
		p.off++
		return true
	}
	return false
}

func (p *parser) end() error {
	p.space()
	if p.off != len(p.b) {
		return p.errorf("trailing data")
	}
	return nil
}

func (p *parser) value() (Value, error) {
	if p.off >= len(p.b) {
		return Value{}, p.errorf("want a value")
	}
	switch c := p.b[p.off]; {
	case c == '"':
		s, err := p.str()
		return Value{Kind: String, Str: s}, err
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []struct {
			s string
			v Value
		}{{"true", Value{Kind: Bool, Bool: true}}, {"false", Value{Kind: Bool}}, {"null", Value{}}} {
			if len(p.b)-p.off >= len(lit.s) && string(p.b[p.off:p.off+len(lit.s)]) == lit.s {
				p.off += len(lit.s)
				return lit.v, nil
			}
		}
		return Value{}, p.errorf("invalid literal")
	case c == '-' || c >= '0' && c <= '9':
		start := p.off
		p.off++
		for p.off < len(p.b) {
			c := p.b[p.off]
			if c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
				p.off++
				continue
			}
			break
		}
		if !validNumber(p.b[start:p.off]) {
			return Value{}, errors.New("invalid number " + strconv.Quote(string(p.b[start:p.off])))
		}
		f, err := strconv.ParseFloat(string(p.b[start:p.off]), 64)
		if err != nil {
			return Value{}, errors.New("invalid number " + strconv.Quote(string(p.b[start:p.off])))
		}
		return Value{Kind: Number, Num: f}, nil
	case c == '{' || c == '[':
		return Value{}, p.errorf("nested objects and arrays are not supported")
	}
	return Value{}, p.errorf("want a value")
}

// validNumber checks JSON's number grammar, stricter than ParseFloat.
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i == len(b)
}

func (p *parser) str() (string, error) {
	if !p.eat('"') {
		return "", p.errorf("want a string")
	}
	var out []byte
	for p.off < len(p.b) {
		c := p.b[p.off]
		switch {
		case c == '"':
			p.off++
			return string(out), nil
		case c < 0x20:
			return "", p.errorf("control character in a string")
		case c == '\\':
			if p.off+1 >= len(p.b) {
				return "", p.errorf("unfinished escape")
			}
			e := p.b[p.off+1]
			p.off += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				if p.off+4 > len(p.b) {
					return "", p.errorf("unfinished \\u escape")
				}
				n, err := strconv.ParseUint(string(p.b[p.off:p.off+4]), 16, 32)
				if err != nil {
					return "", p.errorf("invalid \\u escape")
				}
				p.off += 4
				r := rune(n)
				if r >= 0xd800 && r < 0xe000 {
					r = utf8.RuneError // surrogates are not combined
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", p.errorf("invalid escape")
			}
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(p.b[p.off:])
			if r == utf8.RuneError && size <= 1 {
				return "", p.errorf("invalid UTF-8 in a string")
			}
			out = append(out, p.b[p.off:p.off+size]...)
			p.off += size
		default:
			out = append(out, c)
			p.off++
		}
	}
	return "", p.errorf("unterminated string")
}
