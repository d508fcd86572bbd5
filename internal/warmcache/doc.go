// Package warmcache holds one test, TestWarmCompilationCache, which compiles
// every Wasm module the tests load — the embedded default modules, the test
// modules under hostabi/lbhost/testdata and the examples — into the tests'
// shared compilation cache (internal/gowasm.CacheDir).
//
// `make test` runs it once without the race detector before the whole suite:
// compiling a Go module takes about a second that way and fifteen to thirty
// seconds inside a race-enabled test. It is a test rather than a command
// because wazero keys its cache by its own version as the binary reports it,
// which differs between test binaries and commands.
package warmcache
