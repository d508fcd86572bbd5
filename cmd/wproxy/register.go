package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/wproxy/wproxy/backendkit/etcdreg"
)

// registerCloseTimeout bounds the revocation of the lease at the end of
// `wproxy register`.
const registerCloseTimeout = 5 * time.Second

// passwordEnv, when set, is the etcd password unless -password is given: a
// password in the arguments shows in ps.
const passwordEnv = "WPROXY_ETCD_PASSWORD"

// metaFlag collects repeated -meta key=value flags.
type metaFlag map[string]string

func (m metaFlag) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

func (m metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	m[k] = v
	return nil
}

// flagOfField names the flag behind each field etcdreg.Config.Validate
// reports, by the start of its message.
var flagOfField = []struct{ field, flag string }{
	{"endpoints", "-etcd"},
	{"prefix:", "-prefix:"},
	{"address:", "-addr:"},
	{"ttl:", "-ttl:"},
	{"weight:", "-weight:"},
	{"zone:", "-zone:"},
	{"meta:", "-meta:"},
	{"username and password:", "-user and -password:"},
	{"cert file and key file:", "-cert and -key:"},
}

// cmdRegister registers a backend in etcd and keeps it registered until
// SIGTERM or SIGINT, when it revokes the lease.
func cmdRegister(args []string, stderr io.Writer) int {
	fs, level := newFlags("register", stderr)
	endpoints := fs.String("etcd", "http://127.0.0.1:2379", "etcd client URLs, comma-separated")
	prefix := fs.String("prefix", "", "key prefix, such as /wproxy/services/api (required)")
	addr := fs.String("addr", "", "the backend's HOST:PORT as the proxy dials it (required)")
	ttl := fs.Duration("ttl", 10*time.Second, "lease TTL, whole seconds, at least 2s: how long the key outlives this process if it is killed")
	weight := fs.Uint("weight", 1, "the backend's weight, 1 to 1000000")
	zone := fs.String("zone", "", "the backend's zone")
	meta := metaFlag{}
	fs.Var(meta, "meta", "metadata `key=value`; repeat for more")
	user := fs.String("user", "", "etcd user name")
	password := fs.String("password", "", "etcd password (default: $"+passwordEnv+")")
	cacert := fs.String("cacert", "", "CA certificate file (PEM) that verifies etcd's certificate")
	cert := fs.String("cert", "", "client certificate file (PEM), with -key")
	key := fs.String("key", "", "client key file (PEM), with -cert")
	timeout := fs.Duration("timeout", etcdreg.DefaultFirstTimeout, "how long to wait for etcd at the start before giving up (exit 1)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wproxy register: unexpected argument %q\n", fs.Arg(0))
		return exitConfig
	}
	var missing []string
	if *prefix == "" {
		missing = append(missing, "-prefix PREFIX")
	}
	if *addr == "" {
		missing = append(missing, "-addr HOST:PORT")
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "wproxy register: %s required\n", strings.Join(missing, " and "))
		return exitConfig
	}
	if *weight < 1 || *weight > etcdreg.MaxWeight {
		fmt.Fprintf(stderr, "wproxy register: -weight: %d is not from 1 to %d\n", *weight, etcdreg.MaxWeight)
		return exitConfig
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "wproxy register: -timeout: %v is not positive\n", *timeout)
		return exitConfig
	}
	if *password == "" && *user != "" {
		*password = os.Getenv(passwordEnv)
	}
	logger, err := newLogger(stderr, *level)
	if err != nil {
		fmt.Fprintln(stderr, "wproxy register:", err)
		return exitConfig
	}
	var eps []string
	for _, ep := range strings.Split(*endpoints, ",") {
		eps = append(eps, strings.TrimSpace(ep))
	}
	cfg := etcdreg.Config{
		Endpoints: eps, Prefix: *prefix, Address: *addr, TTL: *ttl,
		Weight: uint32(*weight), Zone: *zone, Meta: meta,
		Username: *user, Password: *password,
		CAFile: *cacert, CertFile: *cert, KeyFile: *key,
		Logger: logger,
	}
	if err := cfg.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			for _, f := range flagOfField {
				if rest, ok := strings.CutPrefix(line, f.field); ok {
					line = f.flag + rest
					break
				}
			}
			fmt.Fprintln(stderr, "wproxy register:", line)
		}
		return exitConfig
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, *timeout)
	reg, err := etcdreg.Register(rctx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintln(stderr, "wproxy register:", err)
		return exitFail
	}
	logger.Info("registered; keeping the lease alive until SIGTERM or SIGINT", "key", reg.Key(), "ttl", *ttl)
	<-ctx.Done()
	stop()
	cctx, cancel := context.WithTimeout(context.Background(), registerCloseTimeout)
	defer cancel()
	if err := reg.Close(cctx); err != nil {
		fmt.Fprintln(stderr, "wproxy register:", err)
		return exitFail
	}
	return exitOK
}
