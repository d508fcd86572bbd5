package httpsyntax

import (
	"net/http"
	"testing"
)

func TestCanonicalizeMatchesNetHTTP(t *testing.T) {
	for _, k := range []string{"content-type", "X-FORWARDED-FOR", "x-a-b", "a", "WWW-authenticate", "x_y", "-x", "x--y", "1abc"} {
		b := []byte(k)
		Canonicalize(b)
		if want := http.CanonicalHeaderKey(k); string(b) != want {
			t.Errorf("%q: %q, want %q", k, b, want)
		}
		if !IsCanonical(b) {
			t.Errorf("%q is not canonical after Canonicalize", b)
		}
	}
	if IsCanonical([]byte("content-Type")) || IsCanonical([]byte("X-ABC")) {
		t.Error("non-canonical names reported canonical")
	}
}

func TestValidToken(t *testing.T) {
	for in, want := range map[string]bool{"GET": true, "X-Custom_1": true, "": false, "a b": false, "a:b": false, "é": false, "a\x00": false} {
		if got := ValidToken([]byte(in)); got != want {
			t.Errorf("%q: %v", in, got)
		}
	}
}
