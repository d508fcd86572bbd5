// Package httpsyntax holds the byte-level rules of HTTP/1.1 field syntax
// (RFC 9110 §5) that wproxy's own parsers share, written to work on []byte
// without allocating.
package httpsyntax

// ValidToken reports whether b is a non-empty RFC 9110 token, the syntax of
// methods and field names.
func ValidToken(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return len(b) > 0
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// Canonicalize rewrites a valid field name in place in the canonical form of
// net/http: the first letter and every letter after a hyphen upper case, the
// others lower case.
func Canonicalize(b []byte) {
	upper := true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
}

// IsCanonical reports whether a field name is in canonical form already.
func IsCanonical(b []byte) bool {
	upper := true
	for _, c := range b {
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// ParseLength parses a Content-Length value: 1 to 18 decimal digits, no sign
// or space (longer values are refused rather than risk overflow).
func ParseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
