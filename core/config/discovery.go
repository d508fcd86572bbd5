package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	policieswasm "github.com/wproxy/wproxy/policies-wasm"
)

// Discovery defaults.
const (
	DefaultDiscoveryInterval = time.Second
	DefaultDiscoveryTimeout  = 2 * time.Second
	MaxDiscoveryBackoff      = 30 * time.Second
)

// Source is one discovery source of a pool's backends: exactly one of File,
// Etcd and Module. Its backends are merged with the pool's static ones and
// with its other sources' (the first to name an address wins).
type Source struct {
	// File is a YAML file listing backends (backends: [...], the same
	// fields as in the configuration), watched for changes. Relative to
	// the configuration's directory.
	File string `yaml:"file"`
	// Etcd reads backends registered under a prefix in etcd, through the
	// default discovery module etcd.
	Etcd *EtcdSource `yaml:"etcd"`
	// Module is a discovery module: a built-in name or a .wasm file.
	Module string `yaml:"module"`
	// Plugin is an adapter that runs as a process of its own (go-plugin),
	// such as wproxy-zookeeper.
	Plugin *PluginSource `yaml:"plugin"`
	// Config is handed to the module's or the plugin's init as JSON.
	Config any `yaml:"config"`
	// Endpoints are the URLs the module may send requests to.
	Endpoints []string `yaml:"endpoints"`
	// CAFile, CertFile and KeyFile configure TLS for the module's https
	// requests: the CA that signs the servers' certificates (default: the
	// system's) and a client certificate.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Interval is the time between two looks (file) or polls (module).
	// Default 1s.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds each request a module makes. Default 2s.
	Timeout time.Duration `yaml:"timeout"`
}

// PluginSource runs a discovery plugin.
type PluginSource struct {
	// Command is the plugin's executable: a path (relative to the
	// configuration's directory) or a name looked up in PATH. Required.
	Command string `yaml:"command"`
	// Args are its arguments.
	Args []string `yaml:"args"`
}

// EtcdSource reads backends that registered themselves in etcd.
type EtcdSource struct {
	// Endpoints are etcd's client URLs (http:// or https://). Required.
	Endpoints []string `yaml:"endpoints"`
	// Prefix is the key prefix the backends register under. Required.
	Prefix string `yaml:"prefix"`
	// Username and Password authenticate to etcd when set.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// CAFile, CertFile and KeyFile configure TLS (see Source).
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Kind names the source's kind: file, etcd or module.
func (s *Source) Kind() string {
	switch {
	case s.File != "":
		return "file"
	case s.Etcd != nil:
		return "etcd"
	case s.Plugin != nil:
		return "plugin"
	}
	return "module"
}

// Name names the source in logs and metrics: the file, the etcd prefix or
// the module.
func (s *Source) Name() string {
	switch {
	case s.File != "":
		return "file:" + s.File
	case s.Etcd != nil:
		return "etcd:" + s.Etcd.Prefix
	case s.Plugin != nil:
		return "plugin:" + filepath.Base(s.Plugin.Command)
	}
	return "module:" + s.Module
}

// PluginCommand returns a plugin source's executable: resolved against dir
// when it is a path, looked up in PATH when it is a name.
func (s *Source) PluginCommand(dir string) (string, error) {
	c := s.Plugin.Command
	if strings.Contains(c, "/") {
		if !filepath.IsAbs(c) {
			c = filepath.Join(dir, c)
		}
		if _, err := os.Stat(c); err != nil {
			return "", err
		}
		return c, nil
	}
	return exec.LookPath(c)
}

// ConfigJSON returns a module's or plugin's config as JSON ({} when none).
func (s *Source) ConfigJSON() []byte {
	if s.Config == nil {
		return []byte("{}")
	}
	b, _ := policyJSON(s.Config)
	return b
}

// Adapter returns what a module source runs: the module (a built-in name
// or a path resolved against dir), its config as JSON, the endpoints it may
// reach and the TLS files (resolved against dir).
func (s *Source) Adapter(dir string) (module string, config []byte, endpoints []string, ca, cert, key string) {
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	if e := s.Etcd; e != nil {
		cfg, _ := json.Marshal(map[string]any{"endpoints": e.Endpoints, "prefix": e.Prefix, "username": e.Username, "password": e.Password})
		return "etcd", cfg, e.Endpoints, resolve(e.CAFile), resolve(e.CertFile), resolve(e.KeyFile)
	}
	cfg := []byte("{}")
	if s.Config != nil {
		cfg, _ = policyJSON(s.Config)
	}
	mod := s.Module
	if isModulePath(mod) {
		mod = resolve(mod)
	}
	return mod, cfg, s.Endpoints, resolve(s.CAFile), resolve(s.CertFile), resolve(s.KeyFile)
}

// FilePath returns a file source's path, resolved against dir.
func (s *Source) FilePath(dir string) string {
	if filepath.IsAbs(s.File) {
		return s.File
	}
	return filepath.Join(dir, s.File)
}

func (c *Config) applySourceDefaults(s *Source) {
	setDefault(&s.Interval, DefaultDiscoveryInterval)
	setDefault(&s.Timeout, DefaultDiscoveryTimeout)
}

func (v *validator) validateDiscovery(at []any, srcs []Source) {
	for i := range srcs {
		s := &srcs[i]
		sat := append(append([]any{}, at...), "discovery", i)
		n := 0
		for _, set := range []bool{s.File != "", s.Etcd != nil, s.Module != "", s.Plugin != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			v.errorf(sat, "a source is exactly one of file, etcd, module and plugin")
			continue
		}
		if s.Interval < 10*time.Millisecond || s.Interval > time.Hour {
			v.errorf(append(sat, "interval"), "%s is out of range 10ms to 1h", s.Interval)
		}
		if s.Timeout < time.Millisecond || s.Timeout > time.Minute {
			v.errorf(append(sat, "timeout"), "%s is out of range 1ms to 1m", s.Timeout)
		}
		switch {
		case s.File != "":
			if _, err := os.Stat(s.FilePath(v.c.Dir)); err != nil {
				v.errorf(append(sat, "file"), "%v", err)
			}
		case s.Plugin != nil:
			if s.Plugin.Command == "" {
				v.errorf(append(sat, "plugin", "command"), "the plugin's executable is required")
			} else if _, err := s.PluginCommand(v.c.Dir); err != nil {
				v.errorf(append(sat, "plugin", "command"), "%v", err)
			}
			if s.Config != nil {
				if _, ok := s.Config.(map[string]any); !ok {
					v.errorf(append(sat, "config"), "config must be a mapping")
				}
			}
		case s.Etcd != nil:
			e := s.Etcd
			eat := append(sat, "etcd")
			if len(e.Endpoints) == 0 {
				v.errorf(append(eat, "endpoints"), "at least one etcd URL is required")
			}
			v.checkURLs(append(eat, "endpoints"), e.Endpoints)
			if !strings.HasPrefix(e.Prefix, "/") {
				v.errorf(append(eat, "prefix"), "%q: a prefix starts with /", e.Prefix)
			}
			v.checkTLSFiles(eat, e.CAFile, e.CertFile, e.KeyFile)
		default:
			if isModulePath(s.Module) {
				if !strings.HasSuffix(s.Module, ".wasm") {
					v.errorf(append(sat, "module"), "%q: a module file must end in .wasm", s.Module)
				}
			} else if _, ok := policieswasm.Lookup(s.Module); !ok || policieswasm.Kind(s.Module) != policieswasm.KindDiscovery {
				v.errorf(append(sat, "module"), "unknown discovery module %q (built in: %s)", s.Module, strings.Join(policieswasm.NamesOf(policieswasm.KindDiscovery), ", "))
			}
			if s.Config != nil {
				if _, ok := s.Config.(map[string]any); !ok {
					v.errorf(append(sat, "config"), "config must be a mapping")
				}
			}
			v.checkURLs(append(sat, "endpoints"), s.Endpoints)
			v.checkTLSFiles(sat, s.CAFile, s.CertFile, s.KeyFile)
		}
	}
}

func (v *validator) checkURLs(at []any, urls []string) {
	for i, u := range urls {
		p, err := url.Parse(u)
		switch {
		case err != nil:
			v.errorf(append(at, i), "%q: %v", u, err)
		case p.Scheme != "http" && p.Scheme != "https":
			v.errorf(append(at, i), "%q: the scheme must be http or https", u)
		case p.Host == "":
			v.errorf(append(at, i), "%q: no host", u)
		}
	}
}

func (v *validator) checkTLSFiles(at []any, ca, cert, key string) {
	if (cert == "") != (key == "") {
		v.errorf(at, "cert_file and key_file go together")
	}
	for field, f := range map[string]string{"ca_file": ca, "cert_file": cert, "key_file": key} {
		if f == "" {
			continue
		}
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(v.c.Dir, p)
		}
		if _, err := os.Stat(p); err != nil {
			v.errorf(append(at, field), "%v", err)
		}
	}
}

// BackendsFile is the content of a file discovery source.
type BackendsFile struct {
	Backends []Backend `yaml:"backends"`
}

// ParseBackendsFile decodes and checks a file discovery source, with errors
// located by line as in a configuration. Weights default to 1.
func ParseBackendsFile(data []byte, file string) ([]Backend, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{yamlError(file, err)}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, nil // an empty file: no backends
	}
	if root.Content[0].Kind != yaml.MappingNode {
		return nil, Errors{{File: file, Line: root.Content[0].Line, Msg: "a backends file is a mapping with a backends list"}}
	}
	var bf BackendsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&bf); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			es := make(Errors, 0, len(te.Errors))
			for _, msg := range te.Errors {
				es = append(es, typeError(file, msg))
			}
			return nil, es
		}
		return nil, Errors{yamlError(file, err)}
	}
	for i := range bf.Backends {
		if bf.Backends[i].Weight == 0 {
			bf.Backends[i].Weight = DefaultWeight
		}
	}
	v := &validator{c: &Config{File: file, root: root.Content[0]}}
	v.validateBackends(nil, bf.Backends)
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool { return v.errs[i].Line < v.errs[j].Line })
		return nil, v.errs
	}
	return bf.Backends, nil
}

// String describes a source for messages.
func (s *Source) String() string { return fmt.Sprintf("%s source %s", s.Kind(), s.Name()) }
