package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestAvailability(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"0.99", "0.99"}, "0.9999 (99.99%)\n"},
		{[]string{"99%", "99%"}, "0.9999 (99.99%)\n"},
		{[]string{"3x99.5%"}, "0.999999875 (99.9999875%)\n"},
		{[]string{"0.9"}, "0.9 (90%)\n"},
		{[]string{"2x0.5", "50%"}, "0.875 (87.5%)\n"},
		{[]string{"0"}, "0 (0%)\n"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if code := run(append([]string{"availability"}, tt.args...), &out, &errOut); code != 0 || out.String() != tt.want {
			t.Errorf("%v: exit %d, %q (stderr %q), want %q", tt.args, code, out.String(), errOut.String(), tt.want)
		}
	}
	for _, bad := range [][]string{nil, {"1.5"}, {"abc"}, {"101%"}, {"0x0.9"}, {"-0.1"}, {"ax0.9"}} {
		var out, errOut bytes.Buffer
		if code := run(append([]string{"availability"}, bad...), &out, &errOut); code != 2 || (len(bad) > 0 && !strings.Contains(errOut.String(), "wproxy availability")) {
			t.Errorf("%v: exit %d, stderr %q", bad, code, errOut.String())
		}
	}
}
