// Package backendkit is the kit for the servers behind wproxy: ordinary Go
// HTTP servers that want to report their load, answer health checks and
// restart themselves when they degrade. Linux only: it reads /proc and
// /sys/fs/cgroup.
//
// A Sampler measures the process: CPU use (from getrusage, between two
// samples), memory (the resident set size from /proc/self/statm against the
// cgroup's limit or the machine's RAM) and requests in flight (counted by
// its Track middleware). On its figures:
//
//   - Sampler.LoadHandler answers wproxy's load_aware policy (README, "The
//     load endpoint"): {"load":0.42,"cpu":0.42,"mem":0.31,"inflight":12}.
//   - Sampler.HealthHandler answers 200 or 503 with the reasons, comparing
//     the figures and checks of the caller's own with thresholds.
//   - A Watchdog drains the server and exits with ExitDegraded (75), for
//     a supervisor to restart it, or re-executes it, when a figure stays
//     past a threshold for a while.
//
// Every goroutine the kit starts has an owner that ends it: Sampler.Stop and
// Watchdog.Stop.
package backendkit
