package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wproxy/wproxy/core/admin"
	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/internal/gowasm"
)

func adminGet(t *testing.T, srv *Server, path, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+srv.AdminAddr()+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// With a token, every admin request but GET /healthz needs it; /config
// shows the configuration in force with its defaults and without secrets;
// /modules names every module with its ABI and digest.
func TestAdminAPI(t *testing.T) {
	a := startHealthBackend(t, "a")
	const token = "s3cret-admin-token-0123"
	dir := t.TempDir()
	_, srv := startProxyIn(t, dir, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0", routes: [{pool: p}]}]
pools:
  p:
    policy: least_request
    policy_config: {choice_count: 3}
    health: {active: {interval: 1s}}
    backends: [{address: %s, meta: {api_key: k-123, region: eu}}]
admin: {address: "127.0.0.1:0", token: %s}
`, a.addr, token))

	for _, path := range []string{"/pools", "/config", "/modules", "/metrics"} {
		for _, bad := range []string{"", "wrong-token-000000000000", token + "x"} {
			if st, _ := adminGet(t, srv, path, bad); st != http.StatusUnauthorized {
				t.Errorf("GET %s with token %q: %d, want 401", path, bad, st)
			}
		}
		if st, body := adminGet(t, srv, path, token); st != 200 {
			t.Errorf("GET %s with the token: %d %s", path, st, body)
		}
	}
	req, _ := http.NewRequest("POST", "http://"+srv.AdminAddr()+"/reload", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /reload without the token: %v %v", resp.StatusCode, err)
	}
	if st, _ := adminGet(t, srv, "/healthz", ""); st != 200 {
		t.Errorf("GET /healthz: %d, want 200 without a token", st)
	}

	_, body := adminGet(t, srv, "/config", token)
	if strings.Contains(string(body), token) || strings.Contains(string(body), "k-123") {
		t.Fatalf("GET /config shows a secret:\n%s", body)
	}
	var cfg struct {
		Admin    struct{ Token string }
		Timeouts struct{ Connect string }
		Pools    map[string]struct {
			Policy       string
			PolicyConfig map[string]any `json:"policy_config"`
			Backends     []struct {
				Weight int
				Meta   map[string]string
			}
		}
	}
	if err := json.Unmarshal(body, &cfg); err != nil {
		t.Fatal(err)
	}
	p := cfg.Pools["p"]
	if cfg.Admin.Token != admin.Redacted || p.Backends[0].Meta["api_key"] != admin.Redacted || p.Backends[0].Meta["region"] != "eu" {
		t.Errorf("redaction: token %q, meta %v", cfg.Admin.Token, p.Backends[0].Meta)
	}
	if cfg.Timeouts.Connect != "5s" || p.Backends[0].Weight != 1 || p.Policy != "least_request" || p.PolicyConfig["choice_count"] != 3.0 {
		t.Errorf("the effective configuration lacks defaults or values:\n%s", body)
	}

	_, body = adminGet(t, srv, "/modules", token)
	var mods []admin.Module
	if err := json.Unmarshal(body, &mods); err != nil {
		t.Fatal(err)
	}
	if len(mods) != 2 {
		t.Fatalf("modules: %s", body)
	}
	if m := mods[0]; m.Name != "least_request" || m.Kind != "balancer" || m.ABI != "wproxy_lb_v1" || len(m.Digest) != 64 || m.Instances < 1 || m.Pool != "p" {
		t.Errorf("balancer module: %+v", m)
	}
	if m := mods[1]; m.Name != "health_status" || m.Kind != "health" || m.ABI != "wproxy_health_v1" || len(m.Digest) != 64 {
		t.Errorf("health module: %+v", m)
	}
}

// The admin API binds loopback unless told otherwise, and beyond loopback
// only with a token.
func TestAdminAddressRules(t *testing.T) {
	base := "listeners: [{address: \"127.0.0.1:0\", routes: [{pool: p}]}]\npools: {p: {backends: [{address: \"127.0.0.1:1\"}]}}\n"
	for _, tt := range []struct {
		admin, want string
	}{
		{`{address: "0.0.0.0:9901"}`, `admin.address: "0.0.0.0:9901" is not a loopback address: set admin.token`},
		{`{address: "[::]:9901"}`, `is not a loopback address`},
		{`{address: "10.1.2.3:9901", token: short}`, `admin.token: too short`},
	} {
		_, err := config.Parse([]byte(base+"admin: "+tt.admin+"\n"), filepath.Join(t.TempDir(), "w.yaml"), "")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("admin %s: %v, want %q", tt.admin, err, tt.want)
		}
	}
	for _, ok := range []string{`{address: "127.0.0.1:9901"}`, `{address: "localhost:9901"}`, `{address: "[::1]:9901"}`, `{address: ":9901"}`, `{address: "0.0.0.0:9901", token: 0123456789abcdef}`} {
		if _, err := config.Parse([]byte(base+"admin: "+ok+"\n"), filepath.Join(t.TempDir(), "w.yaml"), ""); err != nil {
			t.Errorf("admin %s: %v", ok, err)
		}
	}
	// ":0" binds 127.0.0.1.
	_, srv := startProxy(t, strings.Replace(base, "127.0.0.1:1", "127.0.0.1:1", 1)+"admin: {address: \":0\"}\nwasm: {cache_dir: "+gowasm.CacheDir()+"}\n")
	if host := strings.Split(srv.AdminAddr(), ":")[0]; host != "127.0.0.1" {
		t.Errorf("admin bound %s, want 127.0.0.1", srv.AdminAddr())
	}
}
