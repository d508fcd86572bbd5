package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/status"

	"github.com/wproxy/wproxy/core/config"
)

// Supervision timings.
const (
	// MinRestartBackoff is the wait before the first restart of a plugin
	// that died; it doubles on each further failure up to MaxRestartBackoff
	// and starts again from MinRestartBackoff after a run that lasted
	// MaxRestartBackoff or more.
	MinRestartBackoff = 100 * time.Millisecond
	MaxRestartBackoff = 10 * time.Second
	// StartTimeout bounds the plugin's start-up (handshake) and its Init.
	StartTimeout = 30 * time.Second
	// FirstSetTimeout bounds how long Look waits for the plugin's first set
	// (when the context it is given does not end sooner).
	FirstSetTimeout = 5 * time.Second
)

// ErrNoSetYet is Look's error when the plugin has not sent its first set
// within FirstSetTimeout.
var ErrNoSetYet = errors.New("the discovery plugin has not sent a set yet")

// Looker is a discovery.Looker over a plugin process: it starts the plugin,
// keeps the latest set the plugin sent and restarts the plugin (with a
// back-off) when it dies, keeping the last set meanwhile.
type Looker struct {
	name    string
	command string
	args    []string
	config  []byte
	logger  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	client    *goplugin.Client // the current process, nil while down
	set       []config.Backend // the latest set the plugin sent
	haveSet   bool
	err       error // why Look fails now: plugin down, registry unreachable
	returned  []config.Backend
	delivered bool
	restarts  int
	wake      chan struct{} // closed and replaced on every state change
}

// NewLooker starts the plugin command (with args), hands it config (as the
// operator wrote it; the plugin defines its format) and starts watching. A
// configuration error the plugin reports fails NewLooker with the plugin's
// message. The plugin's log lines and output go to logger (nil:
// slog.Default()). Close stops the plugin.
func NewLooker(command string, args []string, config []byte, logger *slog.Logger) (*Looker, error) {
	if logger == nil {
		logger = slog.Default()
	}
	name := filepath.Base(command)
	l := &Looker{
		name: name, command: command, args: slices.Clone(args), config: slices.Clone(config),
		logger: logger.With("discovery_plugin", name),
		done:   make(chan struct{}), wake: make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	c, recv, err := l.start()
	if err != nil {
		l.cancel()
		return nil, err
	}
	go l.supervise(c, recv)
	return l, nil
}

// start starts the plugin process, calls Init and opens the Watch stream.
func (l *Looker) start() (*goplugin.Client, func() (*setMsg, error), error) {
	cmd := exec.Command(l.command, l.args...)
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  HandshakeConfig,
		Plugins:          goplugin.PluginSet{pluginName: &grpcPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           newHCLogger(l.logger),
		SyncStdout:       newLineWriter(l.logger, slog.LevelInfo, "discovery plugin stdout"),
		SyncStderr:       newLineWriter(l.logger, slog.LevelWarn, "discovery plugin stderr"),
		StartTimeout:     StartTimeout,
	})
	fail := func(err error) (*goplugin.Client, func() (*setMsg, error), error) {
		c.Kill()
		return nil, nil, err
	}
	proto, err := c.Client()
	if err != nil {
		return fail(fmt.Errorf("discovery plugin %s: start: %w", l.command, err))
	}
	raw, err := proto.Dispense(pluginName)
	if err != nil {
		return fail(fmt.Errorf("discovery plugin %s: %w", l.command, err))
	}
	dc := raw.(*discoveryClient)
	ictx, cancel := context.WithTimeout(l.ctx, StartTimeout)
	err = dc.Init(ictx, l.config)
	cancel()
	if err != nil {
		if s, ok := status.FromError(err); ok {
			err = errors.New(s.Message())
		}
		return fail(fmt.Errorf("discovery plugin %s: configuration: %w", l.name, err))
	}
	recv, err := dc.Watch(l.ctx)
	if err != nil {
		return fail(fmt.Errorf("discovery plugin %s: watch: %w", l.name, err))
	}
	l.mu.Lock()
	l.client = c
	l.mu.Unlock()
	return c, recv, nil
}

// supervise consumes the stream of the running plugin and restarts the
// plugin when the stream ends, until Close.
func (l *Looker) supervise(c *goplugin.Client, recv func() (*setMsg, error)) {
	defer close(l.done)
	backoff := MinRestartBackoff
	for {
		began := time.Now()
		err := l.consume(recv)
		c.Kill()
		l.mu.Lock()
		l.client = nil
		l.mu.Unlock()
		if l.ctx.Err() != nil {
			return
		}
		if time.Since(began) >= MaxRestartBackoff {
			backoff = MinRestartBackoff
		}
		l.fail(fmt.Errorf("discovery plugin %s stopped (%v); restarting it, the last set is kept", l.name, err))
		l.logger.Warn("discovery plugin stopped; restarting it", "err", err, "after", backoff)
		for {
			t := time.NewTimer(backoff)
			select {
			case <-l.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, MaxRestartBackoff)
			c, recv, err = l.start()
			if err == nil {
				break
			}
			if l.ctx.Err() != nil {
				return
			}
			l.fail(fmt.Errorf("%w; retrying, the last set is kept", err))
			l.logger.Error("discovery plugin did not restart", "err", err, "retry_in", backoff)
		}
		l.mu.Lock()
		l.restarts++
		l.mu.Unlock()
		l.logger.Info("discovery plugin restarted")
	}
}

// consume records each message of the stream until it ends.
func (l *Looker) consume(recv func() (*setMsg, error)) error {
	for {
		m, err := recv()
		if err != nil {
			if s, ok := status.FromError(err); ok {
				return errors.New(s.Message())
			}
			return err
		}
		if m.Error != "" {
			l.fail(fmt.Errorf("discovery plugin %s: %s (the last set is kept)", l.name, m.Error))
			continue
		}
		set, err := toBackends(m.Endpoints)
		if err != nil {
			l.logger.Error("discovery plugin sent a bad set; ignored, the last set is kept", "err", err)
			l.fail(fmt.Errorf("discovery plugin %s sent a bad set: %w", l.name, err))
			continue
		}
		l.mu.Lock()
		l.set, l.haveSet, l.err = set, true, nil
		l.signalLocked()
		l.mu.Unlock()
	}
}

func (l *Looker) fail(err error) {
	l.mu.Lock()
	l.err = err
	l.signalLocked()
	l.mu.Unlock()
}

func (l *Looker) signalLocked() {
	close(l.wake)
	l.wake = make(chan struct{})
}

// Look returns the latest set the plugin sent and whether it changed since
// the last Look that returned one. It fails while the plugin is down (it is
// being restarted) or reports its registry unreachable: the caller keeps its
// last set. Before the plugin's first set, Look waits for it up to
// FirstSetTimeout or until ctx ends.
func (l *Looker) Look(ctx context.Context) ([]config.Backend, bool, error) {
	var timeout <-chan time.Time
	for {
		l.mu.Lock()
		if l.ctx.Err() != nil {
			l.mu.Unlock()
			return nil, false, fmt.Errorf("discovery plugin %s: closed", l.name)
		}
		if l.err != nil {
			err := l.err
			l.mu.Unlock()
			return nil, false, err
		}
		if l.haveSet {
			changed := !l.delivered || !reflect.DeepEqual(l.set, l.returned)
			l.returned, l.delivered = l.set, true
			set := l.set
			l.mu.Unlock()
			return set, changed, nil
		}
		wake := l.wake
		l.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(FirstSetTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-timeout:
			return nil, false, fmt.Errorf("discovery plugin %s: %w", l.name, ErrNoSetYet)
		}
	}
}

// Changed returns a channel closed at the plugin's next message or state
// change, for a caller that wants to Look as soon as there is news rather
// than at its polling interval.
func (l *Looker) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wake
}

// Restarts returns how many times the plugin has been restarted.
func (l *Looker) Restarts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.restarts
}

// pid returns the process id of the running plugin, 0 while it is down.
func (l *Looker) pid() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.client == nil {
		return 0
	}
	if rc := l.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Close stops the plugin and its supervision.
func (l *Looker) Close() {
	l.cancel()
	<-l.done
}

// toBackends checks a plugin's set as discovery's Wasm host does (addresses
// host:port with a numeric port, weights 1 to 1000000, no address twice;
// weight 0 means 1) and returns it sorted by address.
func toBackends(eps []Endpoint) ([]config.Backend, error) {
	set := make([]config.Backend, 0, len(eps))
	seen := make(map[string]bool, len(eps))
	for i, e := range eps {
		host, port, err := net.SplitHostPort(e.Address)
		if err != nil || host == "" || strings.ContainsAny(host, " \t") {
			return nil, fmt.Errorf("endpoint %d: address %q is not host:port", i, e.Address)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("endpoint %d: address %q: bad port", i, e.Address)
		}
		w := e.Weight
		if w == 0 {
			w = 1
		}
		if w > config.MaxWeight {
			return nil, fmt.Errorf("endpoint %d (%s): weight %d is more than %d", i, e.Address, w, config.MaxWeight)
		}
		if seen[e.Address] {
			return nil, fmt.Errorf("endpoint %d: address %s twice", i, e.Address)
		}
		seen[e.Address] = true
		b := config.Backend{Address: e.Address, Weight: w, Zone: e.Zone}
		if len(e.Meta) > 0 {
			b.Meta = e.Meta
		}
		set = append(set, b)
	}
	slices.SortFunc(set, func(x, y config.Backend) int { return strings.Compare(x.Address, y.Address) })
	return set, nil
}
