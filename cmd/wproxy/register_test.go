package main

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wproxy/wproxy/internal/etcdtest"
)

// registeredValue returns the value of key in s, or ok false.
func registeredValue(t *testing.T, s *etcdtest.Server, key string) (string, bool) {
	t.Helper()
	out, err := s.Ctl("get", key, "--print-value-only")
	if err != nil {
		t.Fatalf("etcdctl get: %v: %s", err, out)
	}
	return out, out != ""
}

// waitRegistered polls until key is present (want true) or absent (false)
// and returns how long that took.
func waitRegistered(t *testing.T, s *etcdtest.Server, key string, want bool, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if _, ok := registeredValue(t, s, key); ok == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("key %s present=%v after %v, want %v", key, !want, limit, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// `wproxy register` puts the key and removes it on SIGTERM; a process
// killed outright leaves it until the lease expires.
func TestRegisterCommand(t *testing.T) {
	bin := buildBinary(t)
	s := etcdtest.Start(t, etcdtest.Options{})
	start := func(addr string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, "register", "-etcd", s.URL, "-prefix", "/wproxy/services/api/",
			"-addr", addr, "-ttl", "2s", "-weight", "5", "-zone", "a", "-meta", "v=1", "-meta", "os=linux")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr // read only after Wait
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &stderr
	}

	t.Run("SIGTERM", func(t *testing.T) {
		const key = "/wproxy/services/api/127.0.0.1:9001"
		cmd, stderr := start("127.0.0.1:9001")
		took := waitRegistered(t, s, key, true, 10*time.Second)
		t.Logf("registered %v after the start", took.Round(time.Millisecond))
		v, _ := registeredValue(t, s, key)
		if want := `{"address":"127.0.0.1:9001","weight":5,"zone":"a","meta":{"os":"linux","v":"1"}}`; v != want {
			t.Fatalf("value %s, want %s", v, want)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("after SIGTERM: %v\n%s", err, stderr)
		}
		if _, ok := registeredValue(t, s, key); ok {
			t.Fatalf("key left after SIGTERM\n%s", stderr)
		}
		for _, want := range []string{"etcdreg: registered", "keeping the lease alive", "etcdreg: deregistered"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
	})

	t.Run("SIGKILL", func(t *testing.T) {
		const key = "/wproxy/services/api/127.0.0.1:9002"
		cmd, _ := start("127.0.0.1:9002")
		waitRegistered(t, s, key, true, 10*time.Second)
		time.Sleep(time.Second) // a keep-alive or two
		cmd.Process.Kill()
		killed := time.Now()
		cmd.Wait()
		waitRegistered(t, s, key, false, 3*time.Second) // TTL + 1 s
		t.Logf("the key went %v after SIGKILL (-ttl 2s)", time.Since(killed).Round(time.Millisecond))
	})
}

func TestRegisterCommandUnreachable(t *testing.T) {
	var stderr bytes.Buffer
	// A port nothing listens on: etcdtest's servers pick theirs the same way.
	code := run([]string{"register", "-etcd", "http://127.0.0.1:1", "-prefix", "/p", "-addr", "127.0.0.1:9001", "-ttl", "2s", "-timeout", "500ms"}, io.Discard, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "granting a lease") {
		t.Fatalf("stderr:\n%s", stderr.String())
	}
}

func TestRegisterBadFlags(t *testing.T) {
	base := []string{"-etcd", "http://127.0.0.1:2379", "-prefix", "/wproxy/services/api", "-addr", "10.0.0.1:8080"}
	with := func(flag string, args ...string) []string {
		var out []string
		for i := 0; i < len(base); i += 2 {
			if base[i] != flag {
				out = append(out, base[i], base[i+1])
			}
		}
		return append(out, args...)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"missing -addr", with("-addr"), "-addr HOST:PORT required"},
		{"missing -prefix", with("-prefix"), "-prefix PREFIX required"},
		{"bad -addr", with("-addr", "-addr", "10.0.0.1"), `-addr: "10.0.0.1" is not host:port`},
		{"bad -prefix", with("-prefix", "-prefix", "wproxy"), `-prefix: "wproxy" does not start with /`},
		{"bad -ttl", with("", "-ttl", "soon"), `invalid value "soon" for flag -ttl`},
		{"short -ttl", with("", "-ttl", "1s"), "-ttl: 1s is less than 2s"},
		{"fractional -ttl", with("", "-ttl", "2500ms"), "-ttl: 2.5s is not a whole number of seconds"},
		{"-meta without =", with("", "-meta", "novalue"), `invalid value "novalue" for flag -meta: want key=value`},
		{"-weight 0", with("", "-weight", "0"), "-weight: 0 is not from 1 to 1000000"},
		{"-weight too big", with("", "-weight", "1000001"), "-weight: 1000001 is not from 1 to 1000000"},
		{"empty -etcd", with("-etcd", "-etcd", ""), "-etcd[0]: empty"},
		{"TLS over http", with("", "-cacert", "ca.pem"), `-etcd[0]: "http://127.0.0.1:2379" is plain http`},
		{"-cert without -key", with("", "-cert", "c.pem"), "-cert and -key: give both or neither"},
		{"-user without -password", with("", "-user", "u"), "-user and -password: give both or neither"},
		{"bad -timeout", with("", "-timeout", "0s"), "-timeout: 0s is not positive"},
		{"extra argument", with("", "extra"), `unexpected argument "extra"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(passwordEnv, "")
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"register"}, tt.args...), &stdout, &stderr)
			if code != exitConfig {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr:\n%s\nwant it to contain %q", stderr.String(), tt.want)
			}
		})
	}
}
