// Package etcdadapter is the logic of the default discovery module etcd:
// it reads the backends registered under a key prefix through etcd's v3
// HTTP/JSON gateway and hands the set to the host when it changed. It is
// plain Go, tested natively; the module (package main above) wires it to
// the discovery SDK.
//
// Each backend is the key PREFIX/ADDRESS, its value a JSON object
//
//	{"address": "10.0.0.1:8080", "weight": 1, "zone": "a", "meta": {"k": "v"}}
//
// where weight (0 or absent: 1), zone and meta are optional. A value that does
// not decode, or whose address is not host:port, is skipped with a warning
// naming its key.
package etcdadapter

import (
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wproxy/wproxy/sdk/go/discovery"
)

// RequestTimeout bounds each request to etcd; the host caps it at the
// source's timeout.
const RequestTimeout = 2 * time.Second

// MaxWeight is the largest weight the host takes.
const MaxWeight = 1_000_000

// Config is the module's configuration, the source's config as JSON:
//
//	{"endpoints": ["http://127.0.0.1:2379"], "prefix": "/wproxy/services/api",
//	 "username": "", "password": ""}
type Config struct {
	// Endpoints are etcd's client URLs, tried in order from the last one
	// that answered. Required.
	Endpoints []string
	// Prefix is the key prefix backends register under, without its
	// trailing "/". Required.
	Prefix string
	// Username and Password authenticate to etcd when Username is set.
	Username, Password string
}

// ParseConfig decodes and checks a configuration.
func ParseConfig(raw []byte) (*Config, error) {
	v, err := parseJSON(raw)
	if err != nil {
		return nil, err
	}
	if v.kind != jObject {
		return nil, errors.New("the configuration is " + v.kind.String() + ", want an object")
	}
	c := &Config{}
	for k, f := range v.obj {
		switch k {
		case "endpoints":
			if f.kind == jNull {
				continue
			}
			if f.kind != jArray {
				return nil, errors.New("endpoints is " + f.kind.String() + ", want a list of URLs")
			}
			for i, e := range f.arr {
				if e.kind != jString {
					return nil, errors.New("endpoints[" + strconv.Itoa(i) + "] is " + e.kind.String() + ", want a URL")
				}
				u := strings.TrimRight(e.s, "/")
				if !validURL(u) {
					return nil, errors.New("endpoints[" + strconv.Itoa(i) + "]: " + strconv.Quote(e.s) + " is not an http:// or https:// URL with a host")
				}
				c.Endpoints = append(c.Endpoints, u)
			}
		case "prefix", "username", "password":
			if f.kind == jNull {
				continue
			}
			if f.kind != jString {
				return nil, errors.New(k + " is " + f.kind.String() + ", want a string")
			}
			switch k {
			case "prefix":
				c.Prefix = f.s
			case "username":
				c.Username = f.s
			default:
				c.Password = f.s
			}
		default:
			return nil, errors.New("unknown field " + strconv.Quote(k) + " (endpoints, prefix, username, password)")
		}
	}
	if len(c.Endpoints) == 0 {
		return nil, errors.New("endpoints is required: at least one etcd URL, such as http://127.0.0.1:2379")
	}
	if c.Prefix == "" {
		return nil, errors.New("prefix is required: the key prefix backends register under, such as /wproxy/services/api")
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	if c.Username == "" && c.Password != "" {
		return nil, errors.New("password is set without username")
	}
	return c, nil
}

func validURL(u string) bool {
	rest, ok := strings.CutPrefix(u, "http://")
	if !ok {
		rest, ok = strings.CutPrefix(u, "https://")
	}
	if !ok || rest == "" || strings.ContainsAny(rest, "/?# \t\r\n") {
		return false
	}
	return true
}

// Adapter polls one prefix. It is a discovery.Source.
type Adapter struct {
	// Log writes the adapter's warnings; discovery.Log unless replaced.
	Log func(level discovery.Level, msg string)

	cfg   Config
	http  func(*discovery.Request) (*discovery.Response, error)
	set   func([]discovery.Endpoint) error
	body  []byte // the range request, the same for every poll
	cur   int    // the endpoint that answered last
	token string // etcd's auth token, "" before the first authentication

	synced bool // the host has the set of revision rev
	rev    int64
	last   []discovery.Endpoint
	// warned are the warnings of the last decoding: a bad key is warned
	// about once, not at every move of the revision.
	warned, warning map[string]bool
}

// New returns an adapter for cfg that makes requests with http (in a module,
// discovery.HTTP) and hands sets to set (discovery.SetEndpoints).
func New(cfg *Config, http func(*discovery.Request) (*discovery.Response, error), set func([]discovery.Endpoint) error) *Adapter {
	key := []byte(cfg.Prefix + "/")
	body := `{"key":"` + base64.StdEncoding.EncodeToString(key) +
		`","range_end":"` + base64.StdEncoding.EncodeToString(PrefixRangeEnd(key)) + `"}`
	return &Adapter{Log: discovery.Log, cfg: *cfg, http: http, set: set, body: []byte(body)}
}

// PrefixRangeEnd returns the end of the range of keys that start with
// prefix, as etcd's clientv3.GetPrefixRangeEnd: the prefix with its last byte
// that is not 0xff incremented, and the bytes after it dropped; "\x00" (every
// key from the prefix on) when all its bytes are 0xff.
func PrefixRangeEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// Poll reads the prefix and hands the host the set when etcd's revision
// moved and the set differs from the one the host has.
func (a *Adapter) Poll() error {
	res, err := a.rangePrefix()
	if err != nil {
		return err
	}
	if a.synced && res.Revision == a.rev {
		return nil
	}
	eps := a.endpoints(res.KVs)
	// The revision is etcd's, for every key: most moves are elsewhere.
	if a.synced && equalSets(eps, a.last) {
		a.rev = res.Revision
		return nil
	}
	if err := a.set(eps); err != nil {
		a.synced = false
		return errors.New("etcd " + a.cfg.Prefix + ": " + err.Error())
	}
	a.synced, a.rev, a.last = true, res.Revision, eps
	return nil
}

// endpoints decodes the registered backends, sorted by address, skipping
// (and logging) the values it cannot use.
func (a *Adapter) endpoints(kvs []KV) []discovery.Endpoint {
	eps := make([]discovery.Endpoint, 0, len(kvs))
	a.warning = nil
	for _, kv := range kvs {
		ep, err := DecodeEntry(kv.Value)
		if err != nil {
			a.warn("etcd: skipping key " + strconv.Quote(string(kv.Key)) + ": " + err.Error())
			continue
		}
		eps = append(eps, ep)
	}
	// etcd answers in key order; the stable sort keeps the first key of an
	// address first.
	slices.SortStableFunc(eps, func(x, y discovery.Endpoint) int { return strings.Compare(x.Address, y.Address) })
	out := eps[:0]
	for i, ep := range eps {
		if i > 0 && ep.Address == eps[i-1].Address {
			a.warn("etcd: address " + ep.Address + " is registered under several keys under " + a.cfg.Prefix + "/: keeping the first")
			continue
		}
		out = append(out, ep)
	}
	a.warned = a.warning
	return out
}

// warn logs a warning of the decoding unless the last decoding logged it.
func (a *Adapter) warn(msg string) {
	if a.warning == nil {
		a.warning = map[string]bool{}
	}
	if !a.warned[msg] && !a.warning[msg] {
		a.Log(discovery.Warn, msg)
	}
	a.warning[msg] = true
}

// rangePrefix asks the endpoints in turn, from the one that answered last,
// until one answers.
func (a *Adapter) rangePrefix() (*RangeResult, error) {
	n := len(a.cfg.Endpoints)
	fails := make([]string, 0, n)
	for i := range n {
		k := (a.cur + i) % n
		ep := a.cfg.Endpoints[k]
		res, next, err := a.rangeAt(ep)
		if next {
			fails = append(fails, ep+": "+err.Error())
			continue
		}
		a.cur = k
		if err != nil {
			return nil, errors.New("etcd " + ep + ": " + err.Error())
		}
		return res, nil
	}
	return nil, errors.New("etcd: no endpoint answered: " + strings.Join(fails, "; "))
}

// rangeAt reads the prefix from one endpoint, authenticating first when a
// username is set and there is no token yet, and once again when etcd
// refuses the token. next reports a failure of the endpoint rather than an
// answer: the next endpoint should be tried.
func (a *Adapter) rangeAt(ep string) (res *RangeResult, next bool, err error) {
	fresh := false
	if a.cfg.Username != "" && a.token == "" {
		if next, err := a.authenticate(ep); err != nil {
			return nil, next, err
		}
		fresh = true
	}
	resp, next, err := a.post(ep, "/v3/kv/range", a.body, true)
	if err != nil {
		return nil, next, err
	}
	if resp.Status != 200 && isAuthError(resp) {
		if a.cfg.Username == "" {
			return nil, false, errors.New("etcd requires authentication, set username and password: " + errorText(resp))
		}
		if fresh {
			return nil, false, errors.New("the new token was refused: " + errorText(resp))
		}
		a.token = ""
		if next, err := a.authenticate(ep); err != nil {
			return nil, next, err
		}
		if resp, next, err = a.post(ep, "/v3/kv/range", a.body, true); err != nil {
			return nil, next, err
		}
	}
	if resp.Status != 200 {
		return nil, false, errors.New("range " + a.cfg.Prefix + "/: " + errorText(resp))
	}
	res, err = ParseRange(resp.Body)
	if err != nil {
		return nil, false, errors.New("range " + a.cfg.Prefix + "/: " + err.Error())
	}
	return res, false, nil
}

// authenticate gets a token for the configured user.
func (a *Adapter) authenticate(ep string) (next bool, err error) {
	body := `{"name":` + strconv.Quote(a.cfg.Username) + `,"password":` + strconv.Quote(a.cfg.Password) + `}`
	resp, next, err := a.post(ep, "/v3/auth/authenticate", []byte(body), false)
	if err != nil {
		return next, err
	}
	if resp.Status != 200 {
		return false, errors.New("authenticate as " + strconv.Quote(a.cfg.Username) + ": " + errorText(resp))
	}
	v, err := parseJSON(resp.Body)
	var tok jvalue
	if err == nil {
		tok = v.obj["token"] // nil map unless an object: a zero value
	}
	if err != nil || tok.kind != jString || tok.s == "" {
		return false, errors.New("authenticate as " + strconv.Quote(a.cfg.Username) + ": no token in the answer")
	}
	a.token = tok.s
	return false, nil
}

// post sends a request to an endpoint. next reports a failure before an
// answer (no response, or a 5xx): the next endpoint should be tried.
func (a *Adapter) post(ep, path string, body []byte, auth bool) (resp *discovery.Response, next bool, err error) {
	req := &discovery.Request{
		Method:  "POST",
		URL:     ep + path,
		Header:  []discovery.Header{{Name: "Content-Type", Value: "application/json"}},
		Body:    body,
		Timeout: RequestTimeout,
	}
	if auth && a.token != "" {
		req.Header = append(req.Header, discovery.Header{Name: "Authorization", Value: a.token})
	}
	resp, err = a.http(req)
	switch {
	case err != nil:
		return nil, true, err
	case resp.Status == 0:
		msg := resp.Error
		if msg == "" {
			msg = "no response"
		}
		return nil, true, errors.New(msg)
	case resp.Status >= 500:
		return nil, true, errors.New(errorText(resp))
	}
	return resp, false, nil
}

// isAuthError reports etcd refusing a request for its token, missing or no
// longer valid.
func isAuthError(resp *discovery.Response) bool {
	if resp.Status == 401 {
		return true
	}
	msg := errorMessage(resp.Body)
	return strings.Contains(msg, "invalid auth token") || strings.Contains(msg, "user name is empty") ||
		strings.Contains(msg, "revision of auth store is old")
}

// errorText describes an unsuccessful answer: its status and etcd's message.
func errorText(resp *discovery.Response) string {
	s := "HTTP " + strconv.Itoa(resp.Status)
	if msg := errorMessage(resp.Body); msg != "" {
		return s + ": " + msg
	}
	return s
}

// errorMessage returns the message of etcd's error answer,
// {"error": "...", "message": "...", "code": N}, or the start of a body
// that is not one (quoted), or "" for an empty body.
func errorMessage(body []byte) string {
	if v, err := parseJSON(body); err == nil && v.kind == jObject {
		for _, k := range []string{"message", "error"} {
			if m := v.obj[k]; m.kind == jString && m.s != "" {
				return m.s
			}
		}
	}
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strconv.Quote(s)
}

// KV is one key and value of a range answer.
type KV struct{ Key, Value []byte }

// RangeResult is etcd's answer to a range request: the store's revision and
// the keys in key order.
type RangeResult struct {
	Revision int64
	KVs      []KV
}

// ParseRange decodes the gateway's answer to a range request:
//
//	{"header": {"revision": "123", ...}, "kvs": [{"key": B64, "value": B64, ...}], "count": "2"}
//
// 64-bit integers are JSON strings (a number is taken too); kvs is absent
// when no key matched, and a key's value when it is empty.
func ParseRange(body []byte) (*RangeResult, error) {
	v, err := parseJSON(body)
	if err != nil {
		return nil, err
	}
	if v.kind != jObject {
		return nil, errors.New("the answer is " + v.kind.String() + ", want an object")
	}
	h := v.obj["header"]
	if h.kind != jObject {
		return nil, errors.New("no header in the answer")
	}
	rev, ok := int64Field(h.obj["revision"])
	if !ok {
		return nil, errors.New("no valid header.revision in the answer")
	}
	res := &RangeResult{Revision: rev}
	kvs := v.obj["kvs"]
	switch kvs.kind {
	case jNull:
		return res, nil
	case jArray:
	default:
		return nil, errors.New("kvs is " + kvs.kind.String() + ", want a list")
	}
	res.KVs = make([]KV, 0, len(kvs.arr))
	for i, e := range kvs.arr {
		if e.kind != jObject {
			return nil, errors.New("kvs[" + strconv.Itoa(i) + "] is " + e.kind.String() + ", want an object")
		}
		key, err := b64Field(e.obj["key"])
		if err != nil || len(key) == 0 {
			return nil, errors.New("kvs[" + strconv.Itoa(i) + "]: no valid key")
		}
		val, err := b64Field(e.obj["value"])
		if err != nil {
			return nil, errors.New("kvs[" + strconv.Itoa(i) + "]: value: " + err.Error())
		}
		res.KVs = append(res.KVs, KV{Key: key, Value: val})
	}
	return res, nil
}

func int64Field(v jvalue) (int64, bool) {
	if v.kind != jString && v.kind != jNumber {
		return 0, false
	}
	n, err := strconv.ParseInt(v.s, 10, 64)
	return n, err == nil
}

func b64Field(v jvalue) ([]byte, error) {
	switch v.kind {
	case jNull:
		return nil, nil
	case jString:
		return base64.StdEncoding.DecodeString(v.s)
	}
	return nil, errors.New("is " + v.kind.String() + ", want base64")
}

// DecodeEntry decodes a registered backend's value.
func DecodeEntry(value []byte) (discovery.Endpoint, error) {
	var ep discovery.Endpoint
	if len(value) == 0 {
		return ep, errors.New("empty value")
	}
	v, err := parseJSON(value)
	if err != nil {
		return ep, err
	}
	if v.kind != jObject {
		return ep, errors.New("the value is " + v.kind.String() + ", want an object")
	}
	addr := v.obj["address"]
	if addr.kind != jString {
		return ep, errors.New("no address")
	}
	if !validHostPort(addr.s) {
		return ep, errors.New("address " + strconv.Quote(addr.s) + " is not host:port")
	}
	ep.Address, ep.Weight = addr.s, 1
	switch w := v.obj["weight"]; w.kind {
	case jNull:
	case jNumber:
		n, err := strconv.ParseUint(w.s, 10, 32)
		if err != nil || n > MaxWeight {
			return ep, errors.New("weight " + w.s + " is not a whole number from 0 to 1000000")
		}
		if n > 0 {
			ep.Weight = uint32(n)
		}
	default:
		return ep, errors.New("weight is " + w.kind.String() + ", want a number")
	}
	switch z := v.obj["zone"]; z.kind {
	case jNull:
	case jString:
		if len(z.s) > 0xffff {
			return ep, errors.New("zone is longer than 65535 bytes")
		}
		ep.Zone = z.s
	default:
		return ep, errors.New("zone is " + z.kind.String() + ", want a string")
	}
	switch m := v.obj["meta"]; m.kind {
	case jNull:
	case jObject:
		if len(m.obj) > 0xffff {
			return ep, errors.New("more than 65535 meta entries")
		}
		if len(m.obj) > 0 {
			ep.Meta = make(map[string]string, len(m.obj))
		}
		for k, e := range m.obj {
			if e.kind != jString {
				return ep, errors.New("meta " + strconv.Quote(k) + " is " + e.kind.String() + ", want a string")
			}
			if len(k) > 0xffff || len(e.s) > 0xffff {
				return ep, errors.New("meta " + strconv.Quote(k) + " is longer than 65535 bytes")
			}
			ep.Meta[k] = e.s
		}
	default:
		return ep, errors.New("meta is " + m.kind.String() + ", want an object of strings")
	}
	return ep, nil
}

// validHostPort reports whether s is host:port, as net.SplitHostPort splits
// it (a host with colons in brackets), with a port from 1 to 65535 and a
// host without spaces or control characters.
func validHostPort(s string) bool {
	if len(s) > 0xffff {
		return false
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return false
	}
	host, port := s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return false
		}
		host = host[1 : len(host)-1]
		if !strings.Contains(host, ":") {
			return false
		}
	} else if strings.ContainsAny(host, ":[]") {
		return false
	}
	if host == "" || len(port) == 0 || len(port) > 5 {
		return false
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c <= ' ' || c == 0x7f || c == '/' {
			return false
		}
	}
	p := 0
	for i := 0; i < len(port); i++ {
		c := port[i]
		if c < '0' || c > '9' {
			return false
		}
		p = p*10 + int(c-'0')
	}
	return p >= 1 && p <= 65535
}

func equalSets(a, b []discovery.Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Address != y.Address || x.Weight != y.Weight || x.Zone != y.Zone || len(x.Meta) != len(y.Meta) {
			return false
		}
		for k, v := range x.Meta {
			if w, ok := y.Meta[k]; !ok || w != v {
				return false
			}
		}
	}
	return true
}
