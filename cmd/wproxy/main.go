// Command wproxy is a load balancer whose balancing policies are WebAssembly
// modules. Run `wproxy help` for the commands.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/wproxy/wproxy/core/config"
	"github.com/wproxy/wproxy/core/demo"
	"github.com/wproxy/wproxy/core/server"
)

const usage = `wproxy: a load balancer whose balancing policies are WebAssembly modules.

Usage:
  wproxy run -config FILE        serve the configuration in FILE
  wproxy validate -config FILE   check FILE and its modules without serving
  wproxy demo [-listen ADDR] [-admin ADDR] [-tls]
                                 serve a demo with three built-in backends
                                 (-tls: HTTPS, HTTP/2 and HTTP/3 with a
                                 self-signed certificate)
  wproxy availability A [A ...]  the availability of servers that fail
                                 independently: 0.99 0.99, 99% 99%, 3x99.5%
  wproxy register -prefix PREFIX -addr HOST:PORT [-etcd URL[,URL...]]
                 [-ttl 10s] [-weight N] [-zone Z] [-meta K=V]...
                 [-user U -password P] [-cacert F] [-cert F -key F] [-timeout 10s]
                                 register a backend in etcd with a lease and
                                 keep it alive until SIGTERM or SIGINT
  wproxy version                 print the version

Exit status: 0 after a clean run or a graceful shutdown, 2 for a bad
configuration or bad usage, 1 for other failures.
`

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitConfig
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "availability":
		return cmdAvailability(args[1:], stdout, stderr)
	case "register":
		return cmdRegister(args[1:], stderr)
	case "version":
		fmt.Fprintln(stdout, "wproxy", version())
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "wproxy: unknown command %q\n\n%s", args[0], usage)
	return exitConfig
}

func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("wproxy "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	return fs, level
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func cmdRun(args []string, stderr io.Writer) int {
	fs, level := newFlags("run", stderr)
	file := fs.String("config", "", "configuration file (required)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for performance work)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "wproxy run: -config FILE is required, and nothing else")
		return exitConfig
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "wproxy run: -cpuprofile:", err)
			return exitConfig
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "wproxy run: -cpuprofile:", err)
			return exitConfig
		}
		defer pprof.StopCPUProfile()
	}
	logger, err := newLogger(stderr, *level)
	if err != nil {
		fmt.Fprintln(stderr, "wproxy run:", err)
		return exitConfig
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return configError(stderr, err)
	}
	return serve(cfg, logger, stderr, nil)
}

// serve builds and runs a configuration until SIGTERM or SIGINT; ready, when
// set, is called once the listeners are bound.
func serve(cfg *config.Config, logger *slog.Logger, stderr io.Writer, ready func(*server.Server)) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGHUP is caught before the listeners say they are up: its default
	// action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	srv, err := server.Build(ctx, cfg, logger)
	if err != nil {
		return configError(stderr, err)
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		fmt.Fprintln(stderr, "wproxy:", err)
		return exitFail
	}
	if ready != nil {
		ready(srv)
	}
	// The watch runs always and acts when the configuration in force asks
	// for it, so that a reload can turn it on or off.
	watch := time.NewTicker(2 * time.Second)
	defer watch.Stop()
	last := filesStamp(cfg.Files())
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hup:
			logger.Info("SIGHUP: reloading", "config", cfg.File)
			srv.ReloadFile(context.Background())
			last = filesStamp(srv.Config().Files())
		case <-watch.C:
			cur := srv.Config()
			if !cur.ReloadOnChange {
				continue
			}
			if filesStamp(cur.Files()) != last {
				logger.Info("the configuration or a module changed: reloading", "config", cfg.File)
				srv.ReloadFile(context.Background())
				// A rejected reload is not retried until the files change
				// again; an accepted one may name other modules.
				last = filesStamp(srv.Config().Files())
			}
		}
	}
	stop()
	logger.Info("shutting down", "drain_deadline", cfg.Timeouts.Shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("drain deadline passed; the remaining connections were closed", "err", err)
	} else {
		logger.Info("drained")
	}
	return exitOK
}

// filesStamp identifies the content of files for change detection; a
// missing file counts as empty.
func filesStamp(paths []string) string {
	h := sha256.New()
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		sum := sha256.Sum256(b)
		h.Write([]byte(p))
		h.Write(sum[:])
	}
	return string(h.Sum(nil))
}

func configError(stderr io.Writer, err error) int {
	var es config.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintln(stderr, e)
		}
		if len(es) > 1 {
			fmt.Fprintf(stderr, "%d problems\n", len(es))
		}
		return exitConfig
	}
	fmt.Fprintln(stderr, err)
	return exitConfig
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs, _ := newFlags("validate", stderr)
	file := fs.String("config", "", "configuration file (required)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "wproxy validate: -config FILE is required, and nothing else")
		return exitConfig
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return configError(stderr, err)
	}
	srv, err := server.Build(context.Background(), cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return configError(stderr, err)
	}
	srv.Close()
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d pools)\n", *file, len(cfg.Listeners), len(cfg.Pools))
	return exitOK
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs, level := newFlags("demo", stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address of the demo proxy")
	adminAddr := fs.String("admin", "127.0.0.1:9901", "address of the admin API (empty: none)")
	useTLS := fs.Bool("tls", false, "serve HTTPS (HTTP/1.1, HTTP/2) and HTTP/3 with a self-signed certificate made at start")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	logger, err := newLogger(stderr, *level)
	if err != nil {
		fmt.Fprintln(stderr, "wproxy demo:", err)
		return exitConfig
	}
	backends, err := demo.StartBackends(3)
	if err != nil {
		fmt.Fprintln(stderr, "wproxy demo:", err)
		return exitFail
	}
	defer backends.Close()
	var certFile, keyFile string
	if *useTLS {
		// The certificate is made now; the configuration names files, so
		// it is written to a directory removed when the demo ends.
		dir, err := os.MkdirTemp("", "wproxy-demo-tls-")
		if err != nil {
			fmt.Fprintln(stderr, "wproxy demo:", err)
			return exitFail
		}
		defer os.RemoveAll(dir)
		if certFile, keyFile, err = demo.WriteSelfSigned(dir); err != nil {
			fmt.Fprintln(stderr, "wproxy demo:", err)
			return exitFail
		}
	}
	cfg, err := config.Parse(demo.TLSConfig(*listen, *adminAddr, backends.Addrs, certFile, keyFile), "demo.yaml (embedded)", "")
	if err != nil {
		return configError(stderr, err)
	}
	return serve(cfg, logger, stderr, func(srv *server.Server) {
		addr := srv.Addrs()[0]
		if *useTLS {
			fmt.Fprintf(stdout, `wproxy demo: proxy on https://%s (HTTP/1.1 and HTTP/2) and HTTP/3 on UDP port %s,
with a self-signed certificate for localhost and 127.0.0.1, balancing with the round_robin module over
  backend-1 %s (weight 3)
  backend-2 %s (weight 1)
  backend-3 %s (weight 1)

Try (-k: the certificate is self-signed):
  curl -k -i https://%s/
  curl -k -i --http1.1 https://%s/
  curl -k -i --http3 https://%s/      (needs a curl built with HTTP/3 support)
Each response names its backend in the X-Demo-Backend header and the body;
HTTPS responses advertise HTTP/3 with Alt-Svc.
%sStop with Ctrl-C (SIGINT) or SIGTERM; in-flight requests finish first.
`, addr, portOf(addr), backends.Addrs[0], backends.Addrs[1], backends.Addrs[2], addr, addr, addr, adminLine(srv))
			return
		}
		fmt.Fprintf(stdout, `wproxy demo: proxy on http://%s, balancing with the round_robin module over
  backend-1 %s (weight 3)
  backend-2 %s (weight 1)
  backend-3 %s (weight 1)

Try:
  curl -i http://%s/
  for i in 1 2 3 4 5; do curl -s http://%s/hello; done
Each response names its backend in the X-Demo-Backend header and the body.
%sStop with Ctrl-C (SIGINT) or SIGTERM; in-flight requests finish first.
`, addr, backends.Addrs[0], backends.Addrs[1], backends.Addrs[2], addr, strings.TrimSpace(addr), adminLine(srv))
	})
}

// portOf returns the port of host:port.
func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

func adminLine(srv *server.Server) string {
	if a := srv.AdminAddr(); a != "" {
		return "The pools' health and availability: curl http://" + a + "/pools\n"
	}
	return ""
}
