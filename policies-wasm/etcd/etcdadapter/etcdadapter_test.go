package etcdadapter

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/wproxy/wproxy/sdk/go/discovery"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// rangeBody is a gateway answer with revision rev and the given keys and
// values, in key order as etcd gives them.
func rangeBody(rev int64, kv ...string) []byte {
	var b strings.Builder
	b.WriteString(`{"header":{"cluster_id":"1","member_id":"2","revision":"` + strconv.FormatInt(rev, 10) + `","raft_term":"2"}`)
	if len(kv) > 0 {
		b.WriteString(`,"kvs":[`)
		for i := 0; i < len(kv); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"key":"` + b64(kv[i]) + `","create_revision":"2","mod_revision":"2","version":"1","value":"` + b64(kv[i+1]) + `"}`)
		}
		b.WriteString(`],"count":"` + strconv.Itoa(len(kv)/2) + `"`)
	}
	b.WriteString("}")
	return []byte(b.String())
}

// fakeEtcd answers the adapter's requests like a set of etcd members.
type fakeEtcd struct {
	t     *testing.T
	reqs  []*discovery.Request
	down  map[string]string // endpoint → error (status 0)
	fail5 map[string]bool   // endpoint → 503
	kvs   []string
	rev   int64
	// users and tokens: with auth, ranges need a valid token.
	auth   bool
	tokens map[string]bool
	nextID int
	sets   [][]discovery.Endpoint
	logs   []string
}

func (f *fakeEtcd) http(req *discovery.Request) (*discovery.Response, error) {
	f.reqs = append(f.reqs, req)
	ep, path, _ := strings.Cut(strings.TrimPrefix(req.URL, "http://"), "/")
	if msg, ok := f.down[ep]; ok {
		return &discovery.Response{Error: msg}, nil
	}
	if f.fail5[ep] {
		return &discovery.Response{Status: 503, Body: []byte(`{"error":"etcdserver: leader changed","message":"etcdserver: leader changed","code":14}`)}, nil
	}
	if req.Method != "POST" || req.Timeout != RequestTimeout {
		f.t.Errorf("request %s %s timeout %s", req.Method, req.URL, req.Timeout)
	}
	switch path {
	case "v3/auth/authenticate":
		var cred struct{ Name, Password string }
		if err := json.Unmarshal(req.Body, &cred); err != nil {
			f.t.Fatal(err)
		}
		if cred.Name != "svc" || cred.Password != "pw\"x" {
			return &discovery.Response{Status: 400, Body: []byte(`{"error":"etcdserver: authentication failed, invalid user ID or password","code":3}`)}, nil
		}
		f.nextID++
		tok := "tok." + strconv.Itoa(f.nextID)
		if f.tokens == nil {
			f.tokens = map[string]bool{}
		}
		f.tokens[tok] = true
		return &discovery.Response{Status: 200, Body: []byte(`{"header":{"revision":"5"},"token":"` + tok + `"}`)}, nil
	case "v3/kv/range":
		if f.auth {
			tok := ""
			for _, h := range req.Header {
				if h.Name == "Authorization" {
					tok = h.Value
				}
			}
			switch {
			case tok == "":
				return &discovery.Response{Status: 400, Body: []byte(`{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}`)}, nil
			case !f.tokens[tok]:
				return &discovery.Response{Status: 401, Body: []byte(`{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}`)}, nil
			}
		}
		return &discovery.Response{Status: 200, Body: rangeBody(f.rev, f.kvs...)}, nil
	}
	return &discovery.Response{Status: 404, Body: []byte("404 page not found\n")}, nil
}

func (f *fakeEtcd) set(eps []discovery.Endpoint) error {
	f.sets = append(f.sets, eps)
	return nil
}

func (f *fakeEtcd) adapter(cfg string) *Adapter {
	c, err := ParseConfig([]byte(cfg))
	if err != nil {
		f.t.Fatal(err)
	}
	a := New(c, f.http, f.set)
	a.Log = func(level discovery.Level, msg string) { f.logs = append(f.logs, msg) }
	return a
}

func TestPrefixRangeEnd(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"/wproxy/services/api/", "/wproxy/services/api0"},
		{"a", "b"},
		{"a\xff", "b"},
		{"a\xff\xff", "b"},
		{"\xfe\xff", "\xff"},
		{"\xff", "\x00"},
		{"\xff\xff", "\x00"},
		{"", "\x00"},
	} {
		if got := PrefixRangeEnd([]byte(c.in)); string(got) != c.want {
			t.Errorf("PrefixRangeEnd(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	in := []byte("ab")
	PrefixRangeEnd(in)
	if string(in) != "ab" {
		t.Fatal("the prefix was modified")
	}
}

func TestRangeRequest(t *testing.T) {
	f := &fakeEtcd{t: t, rev: 1}
	a := f.adapter(`{"endpoints":["http://127.0.0.1:2379/"],"prefix":"/wproxy/services/api/"}`)
	if err := a.Poll(); err != nil {
		t.Fatal(err)
	}
	req := f.reqs[0]
	if req.URL != "http://127.0.0.1:2379/v3/kv/range" {
		t.Fatal(req.URL)
	}
	var body map[string]string
	if err := json.Unmarshal(req.Body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"key": b64("/wproxy/services/api/"), "range_end": b64("/wproxy/services/api0")}
	if !reflect.DeepEqual(body, want) {
		t.Fatalf("body %s, want %v", req.Body, want)
	}
	if !reflect.DeepEqual(req.Header, []discovery.Header{{Name: "Content-Type", Value: "application/json"}}) {
		t.Fatalf("header %v", req.Header)
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{"endpoints":["http://a:2379","https://b:2379/"],"prefix":"/p/","username":"u","password":"p"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{Endpoints: []string{"http://a:2379", "https://b:2379"}, Prefix: "/p", Username: "u", Password: "p"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("%+v", c)
	}
	// The host's own encoding: every field, empty credentials.
	if _, err := ParseConfig([]byte(`{"endpoints":["http://127.0.0.1:2379"],"password":"","prefix":"/x","username":""}`)); err != nil {
		t.Fatal(err)
	}
	for in, msg := range map[string]string{
		`{}`:                                                      "endpoints is required",
		`{"prefix":"/p"}`:                                         "endpoints is required",
		`{"endpoints":[],"prefix":"/p"}`:                          "endpoints is required",
		`{"endpoints":["http://a"]}`:                              "prefix is required",
		`{"endpoints":["http://a"],"prefix":""}`:                  "prefix is required",
		`{"endpoints":["a:2379"],"prefix":"/p"}`:                  "endpoints[0]",
		`{"endpoints":"http://a","prefix":"/p"}`:                  "endpoints is a string",
		`{"endpoints":[1],"prefix":"/p"}`:                         "endpoints[0] is a number",
		`{"endpoints":["http://a"],"prefix":1}`:                   "prefix is a number",
		`{"endpoints":["http://a"],"prefix":"/p","pasword":""}`:   `unknown field "pasword"`,
		`{"endpoints":["http://a"],"prefix":"/p","password":"x"}`: "password is set without username",
		`[]`:       "want an object",
		`{"a":1,}`: "json:",
	} {
		_, err := ParseConfig([]byte(in))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseConfig(%s) = %v, want an error with %q", in, err, msg)
		}
	}
}

func TestParseRange(t *testing.T) {
	res, err := ParseRange([]byte(`{"header":{"cluster_id":"1","member_id":"2","revision":"1","raft_term":"2"}}`))
	if err != nil || res.Revision != 1 || len(res.KVs) != 0 {
		t.Fatalf("empty: %+v %v", res, err)
	}
	res, err = ParseRange(rangeBody(123, "/p/a:1", `{"address":"a:1"}`, "/p/b:1", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &RangeResult{Revision: 123, KVs: []KV{{[]byte("/p/a:1"), []byte(`{"address":"a:1"}`)}, {[]byte("/p/b:1"), []byte(`{}`)}}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("%+v", res)
	}
	// An empty value is absent; a number revision is taken.
	res, err = ParseRange([]byte(`{"header":{"revision":7},"kvs":[{"key":"` + b64("/p/x") + `"}]}`))
	if err != nil || res.Revision != 7 || len(res.KVs) != 1 || res.KVs[0].Value != nil {
		t.Fatalf("%+v %v", res, err)
	}
	for _, bad := range []string{``, `null`, `[]`, `{}`, `{"header":{}}`, `{"header":{"revision":"x"}}`,
		`{"header":{"revision":"1"},"kvs":{}}`, `{"header":{"revision":"1"},"kvs":[1]}`,
		`{"header":{"revision":"1"},"kvs":[{"value":"eA=="}]}`, `{"header":{"revision":"1"},"kvs":[{"key":"!!"}]}`,
		`{"header":{"revision":"1"},"kvs":[{"key":"eA==","value":"%"}]}`, `{"header":{"revision":"1"}} x`} {
		if res, err := ParseRange([]byte(bad)); err == nil {
			t.Errorf("ParseRange(%s) = %+v", bad, res)
		}
	}
}

func TestDecodeEntry(t *testing.T) {
	ep, err := DecodeEntry([]byte(`{"address":"10.0.0.1:8080","weight":3,"zone":"a","meta":{"k":"v","x":"\u00e9"},"registered":"2024"}`))
	want := discovery.Endpoint{Address: "10.0.0.1:8080", Weight: 3, Zone: "a", Meta: map[string]string{"k": "v", "x": "é"}}
	if err != nil || !reflect.DeepEqual(ep, want) {
		t.Fatalf("%+v %v", ep, err)
	}
	for _, in := range []string{`{"address":"h:1"}`, `{"address":"h:1","weight":0}`, `{"address":"h:1","weight":null,"zone":null,"meta":null}`} {
		ep, err := DecodeEntry([]byte(in))
		if err != nil || ep.Weight != 1 || ep.Zone != "" || ep.Meta != nil {
			t.Errorf("%s: %+v %v", in, ep, err)
		}
	}
	if ep, err := DecodeEntry([]byte(`{"address":"[::1]:80","weight":1000000}`)); err != nil || ep.Weight != 1000000 {
		t.Errorf("%+v %v", ep, err)
	}
	for _, bad := range []string{``, `x`, `[]`, `{}`, `{"address":1}`, `{"address":"h"}`, `{"address":":80"}`,
		`{"address":"h:0"}`, `{"address":"h:65536"}`, `{"address":"h:8x"}`, `{"address":"::1:80"}`, `{"address":"[h]:80"}`,
		`{"address":"h :80"}`, `{"address":"h:80","weight":-1}`, `{"address":"h:80","weight":1.5}`,
		`{"address":"h:80","weight":1000001}`, `{"address":"h:80","weight":"2"}`, `{"address":"h:80","zone":1}`,
		`{"address":"h:80","meta":{"k":1}}`, `{"address":"h:80","meta":[]}`} {
		if ep, err := DecodeEntry([]byte(bad)); err == nil {
			t.Errorf("DecodeEntry(%s) = %+v", bad, ep)
		}
	}
}

// A poll hands the whole set sorted by address, skipping bad values with a
// warning naming their key; an unchanged revision or set is not handed
// again; an emptied prefix is.
func TestPoll(t *testing.T) {
	f := &fakeEtcd{t: t, rev: 10, kvs: []string{
		"/p/10.0.0.2:80", `{"address":"10.0.0.2:80","weight":2,"zone":"b"}`,
		"/p/10.0.0.1:80", `{"address":"10.0.0.1:80","meta":{"k":"v"}}`,
		"/p/bad", `not json`,
		"/p/noaddr", `{"weight":1}`,
		"/p/dup", `{"address":"10.0.0.1:80","weight":5}`,
	}}
	a := f.adapter(`{"endpoints":["http://e1"],"prefix":"/p"}`)
	if err := a.Poll(); err != nil {
		t.Fatal(err)
	}
	want := []discovery.Endpoint{
		{Address: "10.0.0.1:80", Weight: 1, Meta: map[string]string{"k": "v"}},
		{Address: "10.0.0.2:80", Weight: 2, Zone: "b"},
	}
	if len(f.sets) != 1 || !reflect.DeepEqual(f.sets[0], want) {
		t.Fatalf("sets %+v", f.sets)
	}
	logs := strings.Join(f.logs, "\n")
	for _, s := range []string{`"/p/bad"`, `"/p/noaddr"`, `10.0.0.1:80 is registered under several keys`} {
		if !strings.Contains(logs, s) {
			t.Errorf("no warning with %s in\n%s", s, logs)
		}
	}

	// Same revision: nothing decoded, nothing set, nothing logged.
	f.logs = nil
	if err := a.Poll(); err != nil || len(f.sets) != 1 || len(f.logs) != 0 {
		t.Fatalf("unchanged revision: %v, %d sets, logs %q", err, len(f.sets), f.logs)
	}
	// Another key moved the revision, the set is the same: not set again,
	// and the bad keys, unchanged, are not warned about again.
	f.rev = 11
	if err := a.Poll(); err != nil || len(f.sets) != 1 {
		t.Fatalf("unchanged set: %v, %d sets", err, len(f.sets))
	}
	if strings.Contains(strings.Join(f.logs, "\n"), "skipping") {
		t.Fatalf("warned again: %q", f.logs)
	}
	// A bad key that changes is warned about again.
	f.rev, f.kvs[5], f.logs = 12, `{"address":"x"}`, nil
	if err := a.Poll(); err != nil || len(f.logs) != 1 || !strings.Contains(f.logs[0], `"/p/bad": address "x"`) {
		t.Fatalf("%v, logs %q", err, f.logs)
	}
	// A change.
	f.rev, f.kvs = 13, []string{"/p/10.0.0.3:80", `{"address":"10.0.0.3:80"}`}
	if err := a.Poll(); err != nil || len(f.sets) != 2 || !reflect.DeepEqual(f.sets[1], []discovery.Endpoint{{Address: "10.0.0.3:80", Weight: 1}}) {
		t.Fatalf("change: %v, sets %+v", err, f.sets)
	}
	// Every backend gone: the empty set is handed too.
	f.rev, f.kvs = 14, nil
	if err := a.Poll(); err != nil || len(f.sets) != 3 || len(f.sets[2]) != 0 {
		t.Fatalf("empty: %v, sets %+v", err, f.sets)
	}
}

// A first poll of an empty prefix hands the empty set; a refused set is
// handed again at the next poll.
func TestPollEmptyAndRefused(t *testing.T) {
	f := &fakeEtcd{t: t, rev: 1}
	a := f.adapter(`{"endpoints":["http://e1"],"prefix":"/p"}`)
	refuse := true
	a.set = func(eps []discovery.Endpoint) error {
		if refuse {
			return errors.New("set_endpoints: invalid")
		}
		return f.set(eps)
	}
	if err := a.Poll(); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Fatal(err)
	}
	refuse = false
	if err := a.Poll(); err != nil || len(f.sets) != 1 || f.sets[0] == nil || len(f.sets[0]) != 0 {
		t.Fatalf("%v %+v", err, f.sets)
	}
}

func authHeader(r *discovery.Request) string {
	for _, h := range r.Header {
		if h.Name == "Authorization" {
			return h.Value
		}
	}
	return ""
}

// With a username, the adapter authenticates before its first range, sends
// the token, and when etcd refuses it authenticates again once and retries.
func TestAuth(t *testing.T) {
	f := &fakeEtcd{t: t, rev: 1, auth: true, kvs: []string{"/p/h:1", `{"address":"h:1"}`}}
	a := f.adapter(`{"endpoints":["http://e1"],"prefix":"/p","username":"svc","password":"pw\"x"}`)
	if err := a.Poll(); err != nil {
		t.Fatal(err)
	}
	if len(f.reqs) != 2 || !strings.HasSuffix(f.reqs[0].URL, "/v3/auth/authenticate") || authHeader(f.reqs[1]) != "tok.1" {
		t.Fatalf("requests %+v", f.reqs)
	}
	if len(f.sets) != 1 {
		t.Fatal(f.sets)
	}
	// The token expires: one new authentication, one retry.
	f.tokens = nil
	f.reqs = nil
	f.rev = 2
	if err := a.Poll(); err != nil {
		t.Fatal(err)
	}
	if len(f.reqs) != 3 || authHeader(f.reqs[0]) != "tok.1" || !strings.HasSuffix(f.reqs[1].URL, "/v3/auth/authenticate") || authHeader(f.reqs[2]) != "tok.2" {
		t.Fatalf("requests %+v", f.reqs)
	}
	// The token works: no authentication.
	f.reqs = nil
	if err := a.Poll(); err != nil || len(f.reqs) != 1 {
		t.Fatalf("%v %d requests", err, len(f.reqs))
	}
}

func TestAuthErrors(t *testing.T) {
	f := &fakeEtcd{t: t, rev: 1, auth: true}
	a := f.adapter(`{"endpoints":["http://e1"],"prefix":"/p","username":"svc","password":"wrong"}`)
	if err := a.Poll(); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatal(err)
	}
	a = f.adapter(`{"endpoints":["http://e1"],"prefix":"/p"}`)
	if err := a.Poll(); err == nil || !strings.Contains(err.Error(), "requires authentication") || !strings.Contains(err.Error(), "user name is empty") {
		t.Fatal(err)
	}
	// A token refused right after authentication is not retried forever.
	f.reqs = nil
	a = f.adapter(`{"endpoints":["http://e1"],"prefix":"/p","username":"svc","password":"pw\"x"}`)
	a.http = func(req *discovery.Request) (*discovery.Response, error) {
		resp, err := f.http(req)
		f.tokens = nil
		return resp, err
	}
	if err := a.Poll(); err == nil || !strings.Contains(err.Error(), "invalid auth token") || len(f.reqs) != 2 {
		t.Fatalf("%v, %d requests", err, len(f.reqs))
	}
	if err := a.Poll(); err == nil || len(f.reqs) != 5 {
		t.Fatalf("%v, %d requests", err, len(f.reqs))
	}
}

// A request that gets no response or a 5xx passes to the next endpoint,
// which is then tried first; when none answers, the error names each.
func TestFailover(t *testing.T) {
	f := &fakeEtcd{t: t, rev: 1, down: map[string]string{"e1": "connection refused"}, fail5: map[string]bool{"e2": true}}
	a := f.adapter(`{"endpoints":["http://e1","http://e2","http://e3"],"prefix":"/p"}`)
	if err := a.Poll(); err != nil {
		t.Fatal(err)
	}
	if len(f.reqs) != 3 || !strings.HasPrefix(f.reqs[2].URL, "http://e3/") {
		t.Fatalf("requests %+v", f.reqs)
	}
	f.reqs = nil
	if err := a.Poll(); err != nil || len(f.reqs) != 1 || !strings.HasPrefix(f.reqs[0].URL, "http://e3/") {
		t.Fatalf("%v %+v", err, f.reqs)
	}
	// e3 fails: the next is e1 (wrapping), which answers now.
	delete(f.down, "e1")
	f.down["e3"] = "i/o timeout"
	f.reqs = nil
	if err := a.Poll(); err != nil || len(f.reqs) != 2 || !strings.HasPrefix(f.reqs[1].URL, "http://e1/") {
		t.Fatalf("%v %+v", err, f.reqs)
	}
	f.down["e1"] = "connection refused"
	err := a.Poll()
	if err == nil {
		t.Fatal("no error with every endpoint down")
	}
	for _, s := range []string{"http://e1: connection refused", "http://e2: HTTP 503: etcdserver: leader changed", "http://e3: i/o timeout"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%v does not say %q", err, s)
		}
	}
	// A denied destination is a failure of that endpoint too.
	b := f.adapter(`{"endpoints":["http://e1"],"prefix":"/p"}`)
	b.http = func(*discovery.Request) (*discovery.Response, error) { return nil, discovery.ErrHTTPDenied }
	if err := b.Poll(); err == nil || !strings.Contains(err.Error(), "not among") {
		t.Fatal(err)
	}
}

// A 4xx is etcd's answer: no failover, the error quotes etcd's message.
func TestClientError(t *testing.T) {
	f := &fakeEtcd{t: t}
	a := f.adapter(`{"endpoints":["http://e1","http://e2"],"prefix":"/p"}`)
	a.http = func(req *discovery.Request) (*discovery.Response, error) {
		f.reqs = append(f.reqs, req)
		return &discovery.Response{Status: 403, Body: []byte(`{"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7}`)}, nil
	}
	if err := a.Poll(); err == nil || !strings.Contains(err.Error(), "HTTP 403: etcdserver: permission denied") || len(f.reqs) != 1 {
		t.Fatalf("%v, %d requests", err, len(f.reqs))
	}
	a.http = func(*discovery.Request) (*discovery.Response, error) {
		return &discovery.Response{Status: 200, Body: []byte(`<html>`)}, nil
	}
	if err := a.Poll(); err == nil || !strings.Contains(err.Error(), "json") {
		t.Fatal(err)
	}
}

func TestParseJSON(t *testing.T) {
	v, err := parseJSON([]byte(` {"a":[1,-2.5e3,"x\"\u00e9\ud83d\ude00\ud800",true,false,null,{}],"a2":{"b":{"c":[]}},"d":1,"d":2} `))
	if err != nil {
		t.Fatal(err)
	}
	a := v.obj["a"].arr
	if len(a) != 7 || a[0].s != "1" || a[1].s != "-2.5e3" || a[2].s != "x\"é😀\ufffd" || !a[3].b || a[4].kind != jBool || a[5].kind != jNull || a[6].kind != jObject {
		t.Fatalf("%+v", a)
	}
	if v.obj["d"].s != "2" || v.obj["a2"].obj["b"].obj["c"].kind != jArray {
		t.Fatalf("%+v", v)
	}
	for _, bad := range []string{``, `{`, `[1,]`, `{"a"}`, `{"a":1,}`, `01`, `1.`, `-`, `1e`, `"\x01"`, `"\q"`, `"\u12"`, `tru`, `"a`, `{} {}`,
		strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)} {
		if _, err := parseJSON([]byte(bad)); err == nil {
			t.Errorf("parseJSON(%q) accepted", bad)
		}
	}
	deep := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if _, err := parseJSON([]byte(deep)); err != nil {
		t.Errorf("depth %d: %v", maxDepth, err)
	}
}

// FuzzParseRange checks the parser of etcd's answer, which is untrusted
// input: it never panics; what it accepts, encoding/json accepts with the
// same revision, keys and values; and its JSON decoder accepts exactly the
// documents encoding/json finds valid (up to its depth limit).
func FuzzParseRange(f *testing.F) {
	f.Add(rangeBody(1))
	f.Add(rangeBody(123, "/p/a:1", `{"address":"a:1","weight":2,"meta":{"k":"v"}}`, "/p/b", `x`))
	f.Add([]byte(`{"header":{"revision":7},"kvs":[{"key":"eA=="}],"count":"1"}`))
	f.Add([]byte(`{"header":{"revision":"1"},"kvs":null,"x":[1.5e3,"\ud800",true]}`))
	f.Add([]byte(`{"error":"etcdserver: invalid auth token","code":16}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, jerr := parseJSON(data)
		deep := bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{")) > maxDepth
		if (jerr == nil) != json.Valid(data) && !(deep && jerr != nil) {
			t.Fatalf("parseJSON error %v, json.Valid %v: %q", jerr, json.Valid(data), data)
		}
		res, err := ParseRange(data)
		if err != nil {
			return
		}
		var std map[string]any
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", err, data)
		}
		var rev int64
		switch r := std["header"].(map[string]any)["revision"].(type) {
		case string:
			rev, err = strconv.ParseInt(r, 10, 64)
		case float64:
			rev, err = strconv.ParseInt(string(mustJSON(t, r)), 10, 64)
			if err != nil { // a large or fractional number: compare the literal
				rev, err = res.Revision, nil
			}
		}
		if err != nil || rev != res.Revision {
			t.Fatalf("revision %d, encoding/json %v: %q", res.Revision, std["header"], data)
		}
		kvs, _ := std["kvs"].([]any)
		if len(kvs) != len(res.KVs) {
			t.Fatalf("%d kvs, encoding/json %d: %q", len(res.KVs), len(kvs), data)
		}
		for i, e := range kvs {
			m := e.(map[string]any)
			key, _ := base64.StdEncoding.DecodeString(m["key"].(string))
			var val []byte
			if s, ok := m["value"].(string); ok {
				val, _ = base64.StdEncoding.DecodeString(s)
			}
			if !bytes.Equal(key, res.KVs[i].Key) || !bytes.Equal(val, res.KVs[i].Value) {
				t.Fatalf("kv %d %q=%q, encoding/json %q=%q", i, res.KVs[i].Key, res.KVs[i].Value, key, val)
			}
		}
		// Decoding the values never panics either.
		for _, kv := range res.KVs {
			DecodeEntry(kv.Value)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
