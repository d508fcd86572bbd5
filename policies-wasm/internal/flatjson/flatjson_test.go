package flatjson

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	o, err := Parse([]byte(` {"a": 1.5, "b": "x\"y\u00e9", "c": true, "d": null, "e": -2e3} `))
	if err != nil {
		t.Fatal(err)
	}
	if o["a"].Num != 1.5 || o["b"].Str != "x\"yé" || !o["c"].Bool || o["d"].Kind != Null || o["e"].Num != -2000 {
		t.Fatalf("%+v", o)
	}
	if n, err := o.Int("e", 0, -5000, 0); err != nil || n != -2000 {
		t.Fatal(n, err)
	}
	if _, err := o.Int("a", 0, 0, 10); err == nil {
		t.Fatal("1.5 taken as a whole number")
	}
	if err := o.Check("a", "b", "c", "d"); err == nil || !strings.Contains(err.Error(), `unknown field "e"`) {
		t.Fatal(err)
	}
	if s, _ := o.String("zz", "def"); s != "def" {
		t.Fatal(s)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":{}}`, `{"a":[1]}`, `{"a":01}`, `{"a":1.}`, `{"a":"\x01"}`, `{"a":1}x`, `{"a":1,"a":2}`, `{"a":tru}`, `{"a":"\q"}`} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// FuzzParse checks Parse against encoding/json: what it accepts, the
// standard decoder accepts with the same values.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"load":0.4,"cpu":0.3}`, `{}`, `{"a":"b","c":null,"d":false}`, `{"x":-1e-3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Parse(data)
		if err != nil {
			return
		}
		var std map[string]any
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", err, data)
		}
		if len(std) != len(o) {
			t.Fatalf("%d keys, encoding/json found %d", len(o), len(std))
		}
		for k, v := range o {
			sv := std[k]
			switch v.Kind {
			case Number:
				if f, ok := sv.(float64); !ok || f != v.Num {
					t.Fatalf("%q: %v vs %v", k, v.Num, sv)
				}
			case Bool:
				if b, ok := sv.(bool); !ok || b != v.Bool {
					t.Fatalf("%q: %v vs %v", k, v.Bool, sv)
				}
			case Null:
				if sv != nil {
					t.Fatalf("%q: null vs %v", k, sv)
				}
			case String:
				if s, ok := sv.(string); !ok || (s != v.Str && !strings.ContainsRune(s, '\uFFFD')) {
					t.Fatalf("%q: %q vs %q", k, v.Str, sv)
				}
			}
		}
	})
}
