package admin

import (
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/wproxy/wproxy/core/config"
)

// Redacted replaces secrets in GET /config.
const Redacted = "REDACTED"

// secretKey matches the keys of module configurations and backend metadata
// whose values are taken for secrets.
var secretKey = regexp.MustCompile(`(?i)(secret|token|passw|credential|api_?key|private|auth)`)

// EffectiveConfig returns cfg as served (defaults filled in), by its YAML
// field names, with secrets replaced by Redacted: the admin token, and in
// policy_config, evaluator_config and backend meta every value whose key
// looks like a secret's (secret, token, password, credential, api key,
// private, auth).
func EffectiveConfig(cfg *config.Config) any {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return map[string]any{"error": err.Error()}
	}
	v["file"] = cfg.File
	if a, ok := v["admin"].(map[string]any); ok && a["token"] != "" && a["token"] != nil {
		a["token"] = Redacted
	}
	if pools, ok := v["pools"].(map[string]any); ok {
		for _, p := range pools {
			p, ok := p.(map[string]any)
			if !ok {
				continue
			}
			redact(p["policy_config"], false)
			if h, ok := p["health"].(map[string]any); ok {
				if a, ok := h["active"].(map[string]any); ok {
					redact(a["evaluator_config"], false)
				}
			}
			// Discovery sources: module configs and etcd's password.
			redact(p["discovery"], false)
			if bs, ok := p["backends"].([]any); ok {
				for _, b := range bs {
					if b, ok := b.(map[string]any); ok {
						redact(b["meta"], false)
					}
				}
			}
		}
	}
	return v
}

// redact replaces, at any depth of v, the values under secret-looking
// keys; all replaces every string (v is under such a key).
func redact(v any, all bool) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = redact(e, all || secretKey.MatchString(k))
		}
	case []any:
		for i, e := range v {
			v[i] = redact(e, all)
		}
	default:
		if all && v != nil {
			return Redacted
		}
	}
	return v
}
