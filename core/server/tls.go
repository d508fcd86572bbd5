package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strconv"

	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/netutil"

	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/proxy"
)

// A listener with tls or h2c is served by net/http's server (HTTP/1.1 and
// HTTP/2), with the same proxy.Handler as a plain listener; with http3 too,
// it also serves HTTP/3 over QUIC (quic-go) on the UDP port of the same
// number. Plain HTTP/1.1 listeners keep core/http1.

// netHTTP reports whether lc is served by net/http rather than core/http1.
func netHTTP(lc config.Listener) bool { return lc.Mode != config.ModeTCP && (lc.TLS != nil || lc.H2C) }

// sameProtocols reports whether two listener configurations at one address
// agree on what a running listener cannot change: tls, h2c and http3.
func sameProtocols(a, b config.Listener) bool {
	return reflect.DeepEqual(a.TLS, b.TLS) && a.H2C == b.H2C && a.HTTP3 == b.HTTP3
}

// loadTLS loads a listener's certificates: the first is the default, and Go
// picks among them by the client's server name (SNI).
func loadTLS(t *config.TLS, dir string) (*tls.Config, error) {
	var certs []tls.Certificate
	for _, p := range t.Pairs(dir) {
		c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading %s and %s: %w", p.CertFile, p.KeyFile, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return &tls.Config{
		Certificates: certs,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

// newNetHTTPListener makes a tls or h2c listener around h.
func (s *Server) newNetHTTPListener(g *generation, lc config.Listener, h *proxy.Handler) (*listener, error) {
	logger := s.logger.With("listener", lc.Name)
	l := &listener{name: lc.Name, addr: lc.Address, mode: lc.Mode, handler: h, maxConns: g.cfg.Limits.MaxConnections}
	hs := &http.Server{
		ReadHeaderTimeout: g.cfg.Timeouts.ClientHeader,
		IdleTimeout:       g.cfg.Timeouts.ClientIdle,
		MaxHeaderBytes:    g.cfg.Limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				l.hconns.Add(1)
			case http.StateClosed, http.StateHijacked:
				l.hconns.Add(-1)
			}
		},
	}
	if lc.TLS == nil { // h2c
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		hs.Protocols = &p
		hs.Handler = h
		l.hs = hs
		return l, nil
	}
	tlsConf, err := loadTLS(lc.TLS, g.cfg.Dir)
	if err != nil {
		return nil, err
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	hs.Protocols = &p
	hs.TLSConfig = tlsConf
	hs.Handler = h
	l.hs = hs
	if lc.HTTP3 {
		hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if v := l.altSvc.Load(); v != nil {
				w.Header().Set("Alt-Svc", *v)
			}
			h.ServeHTTP(w, r)
		})
		l.h3 = &http3.Server{
			Handler:        h,
			TLSConfig:      http3.ConfigureTLSConfig(tlsConf),
			IdleTimeout:    g.cfg.Timeouts.ClientIdle,
			MaxHeaderBytes: g.cfg.Limits.MaxHeaderBytes,
			Logger:         logger,
		}
	}
	return l, nil
}

// bind opens the listener's sockets: TCP, and for http3 UDP on the same
// port number (with port 0, the port TCP got; tried again on another free
// port when that UDP port is taken).
func (l *listener) bind() error {
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return err
		}
		if l.h3 == nil {
			l.ln = ln
			return nil
		}
		host, port, _ := net.SplitHostPort(l.addr)
		if port == "0" {
			_, port, _ = net.SplitHostPort(ln.Addr().String())
		}
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			ln.Close()
			if anyPort(l.addr) && attempt < 20 {
				continue
			}
			return fmt.Errorf("udp (http3): %w", err)
		}
		l.ln, l.pc = ln, pc
		alt := `h3=":` + strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port) + `"; ma=86400`
		l.altSvc.Store(&alt)
		return nil
	}
}

// anyPort reports whether addr asks for any free port.
func anyPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// closeSockets closes what bind opened, for a listener that will not serve.
func (l *listener) closeSockets() {
	if l.ln != nil {
		l.ln.Close()
		l.ln = nil
	}
	if l.pc != nil {
		l.pc.Close()
		l.pc = nil
	}
}

// serveNetHTTP serves a tls or h2c listener (and its HTTP/3) until shutdown.
func (s *Server) serveNetHTTP(l *listener) {
	ln := l.ln
	if l.maxConns > 0 {
		ln = netutil.LimitListener(ln, l.maxConns)
	}
	s.serving.Go(func() {
		var err error
		if l.hs.TLSConfig != nil {
			err = l.hs.ServeTLS(ln, "", "")
		} else {
			err = l.hs.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("listener stopped", "listener", l.name, "err", err)
		}
	})
	if l.h3 != nil && l.pc != nil {
		pc := l.pc
		s.serving.Go(func() {
			err := l.h3.Serve(pc)
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				s.logger.Error("http3 listener stopped", "listener", l.name, "err", err)
			}
		})
		s.logger.Info("listening", "listener", l.name, "address", pc.LocalAddr().String(), "protocol", "http3")
	}
}

// shutdownNetHTTP stops a tls or h2c listener: no new connections, requests
// in flight finish until ctx is done, then every connection is closed.
func (l *listener) shutdownNetHTTP(ctx context.Context) error {
	var first error
	done := make(chan error, 1)
	if l.h3 != nil {
		go func() { done <- l.h3.Shutdown(ctx) }()
	} else {
		done <- nil
	}
	if err := l.hs.Shutdown(ctx); err != nil {
		l.hs.Close()
		first = err
	}
	if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) && first == nil {
		first = err
	}
	if l.pc != nil {
		l.pc.Close() // http3.Server.Serve does not close the socket it was given
	}
	l.handler.CloseTunnels()
	return first
}
