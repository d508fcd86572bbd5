package etcdadapter

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON decoder for etcd's answers, the values backends register and
// the configuration: encoding/json adds 1.4 MB to a Go module (see
// policies-wasm/internal/flatjson), and these documents nest one or two
// levels, which flatjson does not decode. It accepts exactly RFC 8259 JSON
// (as encoding/json.Valid), nested at most maxDepth deep; an object's
// duplicate keys keep the last value, as encoding/json does.

type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

var kindNames = [...]string{"null", "a boolean", "a number", "a string", "an array", "an object"}

func (k jkind) String() string { return kindNames[k] }

// jvalue is a decoded JSON value. s is a string's content or a number's
// literal.
type jvalue struct {
	kind jkind
	s    string
	b    bool
	arr  []jvalue
	obj  map[string]jvalue
}

const maxDepth = 64

func parseJSON(data []byte) (jvalue, error) {
	p := jparser{b: data}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return jvalue{}, err
	}
	p.space()
	if p.i != len(p.b) {
		return jvalue{}, p.errorf("trailing data")
	}
	return v, nil
}

type jparser struct {
	b []byte
	i int
}

func (p *jparser) errorf(msg string) error {
	return errors.New("json: " + msg + " at offset " + strconv.Itoa(p.i))
}

func (p *jparser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jparser) lit(word string) bool {
	if len(p.b)-p.i >= len(word) && string(p.b[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return true
	}
	return false
}

func (p *jparser) value(depth int) (jvalue, error) {
	if p.i >= len(p.b) {
		return jvalue{}, p.errorf("unexpected end")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, err := p.str()
		return jvalue{kind: jString, s: s}, err
	case c == 't' && p.lit("true"):
		return jvalue{kind: jBool, b: true}, nil
	case c == 'f' && p.lit("false"):
		return jvalue{kind: jBool}, nil
	case c == 'n' && p.lit("null"):
		return jvalue{}, nil
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	return jvalue{}, p.errorf("unexpected character " + strconv.QuoteRune(rune(p.b[p.i])))
}

func (p *jparser) object(depth int) (jvalue, error) {
	if depth > maxDepth {
		return jvalue{}, p.errorf("nested too deep")
	}
	p.i++ // {
	v := jvalue{kind: jObject, obj: map[string]jvalue{}}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return v, nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return jvalue{}, p.errorf("want a key")
		}
		k, err := p.str()
		if err != nil {
			return jvalue{}, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return jvalue{}, p.errorf("want ':'")
		}
		p.i++
		p.space()
		e, err := p.value(depth)
		if err != nil {
			return jvalue{}, err
		}
		v.obj[k] = e
		p.space()
		if p.i >= len(p.b) {
			return jvalue{}, p.errorf("unexpected end")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return v, nil
		default:
			return jvalue{}, p.errorf("want ',' or '}'")
		}
	}
}

func (p *jparser) array(depth int) (jvalue, error) {
	if depth > maxDepth {
		return jvalue{}, p.errorf("nested too deep")
	}
	p.i++ // [
	v := jvalue{kind: jArray}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		p.space()
		e, err := p.value(depth)
		if err != nil {
			return jvalue{}, err
		}
		v.arr = append(v.arr, e)
		p.space()
		if p.i >= len(p.b) {
			return jvalue{}, p.errorf("unexpected end")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return v, nil
		default:
			return jvalue{}, p.errorf("want ',' or ']'")
		}
	}
}

func (p *jparser) number() (jvalue, error) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return jvalue{}, p.errorf("malformed number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return jvalue{}, p.errorf("malformed number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return jvalue{}, p.errorf("malformed number")
		}
	}
	return jvalue{kind: jNumber, s: string(p.b[start:p.i])}, nil
}

// str decodes a string at p.i (which is '"'). Invalid UTF-8 and lone
// surrogates become U+FFFD, as in encoding/json.
func (p *jparser) str() (string, error) {
	p.i++ // "
	start := p.i
	// The common case: no escapes, valid UTF-8.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			p.i++
			if utf8.Valid(s) {
				return string(s), nil
			}
			return string([]rune(string(s))), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		p.i++
	}
	out := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return string([]rune(string(out))), nil
			}
			return string(out), nil
		case c < 0x20:
			return "", p.errorf("control character in string")
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		p.i++ // backslash
		if p.i >= len(p.b) {
			break
		}
		e := p.b[p.i]
		p.i++
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
			r, ok := p.hex4()
			if !ok {
				return "", p.errorf("malformed \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A pair is \uD8xx\uDCxx; anything else is a lone surrogate.
				save := p.i
				if p.lit(`\u`) {
					if r2, ok := p.hex4(); ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							out = utf8.AppendRune(out, d)
							continue
						}
					}
				}
				p.i = save
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", p.errorf("malformed escape")
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *jparser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}
