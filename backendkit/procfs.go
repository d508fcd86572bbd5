package backendkit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Where the memory limit came from, as MemoryLimit reports it.
const (
	LimitSourceCgroupV2 = "cgroup v2"
	LimitSourceCgroupV1 = "cgroup v1"
	LimitSourceMemInfo  = "meminfo"
)

// MemoryLimit returns the memory this process may use, in bytes, and where
// that figure came from (LimitSourceCgroupV2, LimitSourceCgroupV1 or
// LimitSourceMemInfo): the cgroup v2 memory.max of the process's cgroup or
// of its nearest limited ancestor, unless "max"; else the cgroup v1
// memory.limit_in_bytes, found the same way; else the machine's RAM
// (MemTotal in /proc/meminfo). A cgroup limit that is not below the RAM, such
// as cgroup v1's "unlimited" 9223372036854771712, counts as no limit. It
// reads /proc and /sys/fs/cgroup on every call and is safe for concurrent
// use.
func MemoryLimit() (bytes int64, source string, err error) {
	return memoryLimit("/")
}

// memoryLimit is MemoryLimit with the file system rooted at root, so that
// tests can present the files of other machines.
func memoryLimit(root string) (int64, string, error) {
	total, err := memTotal(filepath.Join(root, "proc/meminfo"))
	if err != nil {
		return 0, "", err
	}
	cg, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, "", fmt.Errorf("memory limit: %w", err)
	}
	v2path, v1path := cgroupPaths(cg)
	if lim, ok := cgroupLimit(filepath.Join(root, "sys/fs/cgroup"), v2path, "memory.max"); ok && lim < total {
		return lim, LimitSourceCgroupV2, nil
	}
	if v1path != "" {
		if lim, ok := cgroupLimit(filepath.Join(root, "sys/fs/cgroup/memory"), v1path, "memory.limit_in_bytes"); ok && lim < total {
			return lim, LimitSourceCgroupV1, nil
		}
	}
	return total, LimitSourceMemInfo, nil
}

// cgroupPaths returns this process's cgroup v2 path ("/" if it has none, so
// that the root of the mount is still looked at) and its cgroup v1 memory
// controller's path ("" if none), from the lines of /proc/self/cgroup.
func cgroupPaths(b []byte) (v2, v1 string) {
	v2 = "/"
	for line := range strings.Lines(string(b)) {
		id, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		controllers, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		if id == "0" && controllers == "" {
			v2 = p
			continue
		}
		for c := range strings.SplitSeq(controllers, ",") {
			if c == "memory" {
				v1 = p
			}
		}
	}
	return v2, v1
}

// cgroupLimit returns the smallest limit in file of the cgroup at p under
// mount and its ancestors up to the mount's root. Files that are missing,
// unreadable, "max" or not a positive number do not count. A process whose
// /proc/self/cgroup shows a path from outside its container still finds its
// own limit at the mount's root.
func cgroupLimit(mount, p, file string) (int64, bool) {
	var best int64
	found := false
	p = path.Clean("/" + p)
	for {
		b, err := os.ReadFile(filepath.Join(mount, filepath.FromSlash(p), file))
		if err == nil {
			s := strings.TrimSpace(string(b))
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && (!found || n < best) {
				best, found = n, true
			}
		}
		if p == "/" {
			return best, found
		}
		p = path.Dir(p)
	}
}

// memTotal reads MemTotal from a /proc/meminfo file, in bytes.
func memTotal(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("memory limit: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "MemTotal:" {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("memory limit: %s: bad MemTotal %q", file, f[1])
		}
		if len(f) > 2 && f[2] == "kB" {
			n *= 1024
		}
		return n, nil
	}
	return 0, fmt.Errorf("memory limit: %s: no MemTotal", file)
}

// rss returns this process's resident set size in bytes, from the second
// field of /proc/self/statm (in pages).
func rss() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("rss: /proc/self/statm: %q has fewer than 2 fields", b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("rss: /proc/self/statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// cpuTime returns the CPU time this process has used so far, user and system,
// from getrusage(RUSAGE_SELF), which counts in microseconds where
// /proc/self/stat counts in clock ticks.
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("cpu time: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
