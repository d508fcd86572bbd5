package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/discovery"
	"github.com/wproxy/wproxy/core/discovery/plugin"
	"github.com/wproxy/wproxy/hostabi/discoveryhost"
	policieswasm "github.com/wproxy/wproxy/policies-wasm"
)

// buildDiscovery loads a pool's discovery sources: every module compiled and
// initialised, so that a bad source fails the configuration (or the reload)
// with its location. The manager it returns has not looked yet.
func (s *Server) buildDiscovery(ctx context.Context, cfg *config.Config, pool string) (*discovery.Manager, error) {
	pc := cfg.Pools[pool]
	var sources []discovery.Source
	closeAll := func() {
		for _, src := range sources {
			src.Looker.Close()
		}
	}
	for i := range pc.Discovery {
		src := &pc.Discovery[i]
		if src.File != "" {
			sources = append(sources, discovery.Source{Name: src.Name(), Kind: src.Kind(), Interval: src.Interval,
				Looker: &discovery.FileLooker{Path: src.FilePath(cfg.Dir)}})
			continue
		}
		if src.Plugin != nil {
			command, err := src.PluginCommand(cfg.Dir)
			var l *plugin.Looker
			if err == nil {
				l, err = plugin.NewLooker(command, src.Plugin.Args, src.ConfigJSON(), s.logger.With("pool", pool, "source", src.Name()))
			}
			if err != nil {
				closeAll()
				return nil, cfg.ErrorAt(err, "pools", pool, "discovery", i, "plugin")
			}
			sources = append(sources, discovery.Source{Name: src.Name(), Kind: src.Kind(), Interval: src.Interval, Looker: l})
			continue
		}
		ad, err := s.buildAdapter(ctx, cfg, pool, src)
		if err != nil {
			closeAll()
			at := "module"
			if src.Etcd != nil {
				at = "etcd"
			}
			return nil, cfg.ErrorAt(err, "pools", pool, "discovery", i, at)
		}
		sources = append(sources, discovery.Source{Name: src.Name(), Kind: src.Kind(), Interval: src.Interval,
			Looker: &discovery.AdapterLooker{Adapter: ad}})
	}
	return discovery.NewManager(pool, pc.Backends, sources, s.logger), nil
}

func (s *Server) buildAdapter(ctx context.Context, cfg *config.Config, pool string, src *config.Source) (*discoveryhost.Adapter, error) {
	module, adapterConfig, endpoints, ca, cert, key := src.Adapter(cfg.Dir)
	var wasm []byte
	if b, ok := policieswasm.Lookup(module); ok && policieswasm.Kind(module) == policieswasm.KindDiscovery {
		wasm = b
	} else {
		b, err := os.ReadFile(module)
		if err != nil {
			return nil, err
		}
		wasm = b
	}
	mod, err := discoveryhost.Load(ctx, s.rt, module, wasm)
	if err != nil {
		return nil, err
	}
	client, err := httpClient(ca, cert, key, src.Timeout)
	if err != nil {
		return nil, err
	}
	return discoveryhost.New(mod, adapterConfig, discoveryhost.Options{
		Endpoints: endpoints, Client: client, Timeout: src.Timeout, CallBudget: cfg.Wasm.CallBudget,
		Logger: s.logger.With("pool", pool, "source", src.Name()),
	})
}

// httpClient returns the client of a discovery source, with its TLS files.
func httpClient(ca, cert, key string, timeout time.Duration) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", ca)
		}
		tc.RootCAs = pool
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("cert_file and key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("cert_file and key_file go together")
	}
	return &http.Client{Transport: &http.Transport{
		Proxy: nil, TLSClientConfig: tc, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute,
		ResponseHeaderTimeout: timeout, TLSHandshakeTimeout: timeout,
	}}, nil
}
