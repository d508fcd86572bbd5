// Package testproc runs a server process for tests (etcd, ZooKeeper): it
// starts it, waits until it is ready, kills it to play an outage and starts
// it again on the same arguments, and keeps its output for failure messages.
package testproc

import (
	"bytes"
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Process is one server process.
type Process struct {
	// Name names the server in failure messages.
	Name string
	// Args are the command and its arguments; Dir is its directory.
	Args []string
	Dir  string
	// Ready reports whether the server serves.
	Ready func() error
	// Timeout bounds the wait for Ready.
	Timeout time.Duration

	tb   testing.TB
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  lockedBuffer
}

// Start starts the process (unless it runs) and waits until it is ready;
// it fails the test if the process exits first or is not ready in time.
// The process is killed when the test ends.
func (p *Process) Start(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	if p.tb == nil {
		p.tb = tb
		tb.Cleanup(p.Stop)
	}
	if p.cmd != nil {
		p.mu.Unlock()
		return
	}
	cmd := exec.Command(p.Args[0], p.Args[1:]...)
	cmd.Dir = p.Dir
	p.out.reset()
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		tb.Fatal(err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	done := p.done
	go func() { cmd.Wait(); close(done) }()
	p.mu.Unlock()
	deadline := time.Now().Add(p.Timeout)
	for {
		err := p.Ready()
		if err == nil {
			return
		}
		select {
		case <-done:
			tb.Fatalf("%s exited: %s", p.Name, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready after %s: %v\n%s", p.Name, p.Timeout, err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts the process again after Stop, on the same arguments (so
// the same ports and data), and waits until it is ready.
func (p *Process) Restart() {
	p.tb.Helper()
	p.Start(p.tb)
}

// Stop kills the process (SIGKILL: an outage, not a shutdown) and waits
// for it to exit.
func (p *Process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// FreePort returns a loopback TCP port free now.
func FreePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer is the process's output, written by its copying goroutines
// and read on failure.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *lockedBuffer) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Reset()
}
