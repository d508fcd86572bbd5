package backendkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const meminfo16G = "MemTotal:       16777216 kB\nMemFree:         1000000 kB\n"

// The memory limit of machines and containers of every kind, from the files
// they present.
func TestMemoryLimitDetection(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		want       int64
		wantSource string
		wantErr    string
	}{
		{
			name:       "no cgroup file",
			files:      map[string]string{"proc/meminfo": meminfo16G},
			want:       16 << 30,
			wantSource: LimitSourceMemInfo,
		},
		{
			name: "cgroup v2 service",
			files: map[string]string{
				"proc/meminfo":     meminfo16G,
				"proc/self/cgroup": "0::/system.slice/app.service\n",
				"sys/fs/cgroup/system.slice/app.service/memory.max": "536870912\n",
				"sys/fs/cgroup/system.slice/memory.max":             "max\n",
			},
			want:       512 << 20,
			wantSource: LimitSourceCgroupV2,
		},
		{
			name: "cgroup v2 limit on an ancestor",
			files: map[string]string{
				"proc/meminfo":                   meminfo16G,
				"proc/self/cgroup":               "0::/a/b/c\n",
				"sys/fs/cgroup/a/b/c/memory.max": "max\n",
				"sys/fs/cgroup/a/b/memory.max":   "2147483648\n",
				"sys/fs/cgroup/a/memory.max":     "4294967296\n",
			},
			want:       2 << 30,
			wantSource: LimitSourceCgroupV2,
		},
		{
			name: "cgroup v2 container with its own namespace",
			files: map[string]string{
				"proc/meminfo":             meminfo16G,
				"proc/self/cgroup":         "0::/\n",
				"sys/fs/cgroup/memory.max": "268435456\n",
			},
			want:       256 << 20,
			wantSource: LimitSourceCgroupV2,
		},
		{
			name: "cgroup v2 container showing the host's path",
			files: map[string]string{
				"proc/meminfo":             meminfo16G,
				"proc/self/cgroup":         "0::/kubepods/burstable/pod1/abc\n",
				"sys/fs/cgroup/memory.max": "268435456\n",
			},
			want:       256 << 20,
			wantSource: LimitSourceCgroupV2,
		},
		{
			name: "cgroup v2 max",
			files: map[string]string{
				"proc/meminfo":             meminfo16G,
				"proc/self/cgroup":         "0::/\n",
				"sys/fs/cgroup/memory.max": "max\n",
			},
			want:       16 << 30,
			wantSource: LimitSourceMemInfo,
		},
		{
			name: "cgroup v2 limit above the RAM",
			files: map[string]string{
				"proc/meminfo":             meminfo16G,
				"proc/self/cgroup":         "0::/\n",
				"sys/fs/cgroup/memory.max": "68719476736\n",
			},
			want:       16 << 30,
			wantSource: LimitSourceMemInfo,
		},
		{
			name: "cgroup v1 limited",
			files: map[string]string{
				"proc/meminfo":     meminfo16G,
				"proc/self/cgroup": "5:devices:/\n4:memory:/docker/abc\n0::/\n",
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "1073741824\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
			},
			want:       1 << 30,
			wantSource: LimitSourceCgroupV1,
		},
		{
			name: "cgroup v1 co-mounted controllers",
			files: map[string]string{
				"proc/meminfo":     meminfo16G,
				"proc/self/cgroup": "3:cpuacct,memory:/x\n",
				"sys/fs/cgroup/memory/x/memory.limit_in_bytes": "1073741824\n",
			},
			want:       1 << 30,
			wantSource: LimitSourceCgroupV1,
		},
		{
			name: "cgroup v1 unlimited",
			files: map[string]string{
				"proc/meminfo":     meminfo16G,
				"proc/self/cgroup": "4:memory:/process_api/x\n0::/\n",
				"sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes": "9223372036854771712\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":               "9223372036854771712\n",
			},
			want:       16 << 30,
			wantSource: LimitSourceMemInfo,
		},
		{
			name: "cgroup garbage",
			files: map[string]string{
				"proc/meminfo":             meminfo16G,
				"proc/self/cgroup":         "nonsense\n0::/\n",
				"sys/fs/cgroup/memory.max": "lots\n",
			},
			want:       16 << 30,
			wantSource: LimitSourceMemInfo,
		},
		{
			name:    "no meminfo",
			files:   map[string]string{"proc/self/cgroup": "0::/\n"},
			wantErr: "meminfo: no such file",
		},
		{
			name:    "meminfo without MemTotal",
			files:   map[string]string{"proc/meminfo": "MemFree: 1 kB\n"},
			wantErr: "no MemTotal",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, source, err := memoryLimit(root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || source != tt.wantSource {
				t.Fatalf("memoryLimit = %d (%s), want %d (%s)", got, source, tt.want, tt.wantSource)
			}
		})
	}
}

// This machine's own files give a limit.
func TestMemoryLimitHere(t *testing.T) {
	n, source, err := MemoryLimit()
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 || source == "" {
		t.Fatalf("MemoryLimit = %d, %q", n, source)
	}
	t.Logf("memory limit %d MiB from %s", n>>20, source)
}
