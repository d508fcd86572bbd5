//go:build unix

package proxy

import "syscall"

var (
	errConnReset  error = syscall.ECONNRESET
	errBrokenPipe error = syscall.EPIPE
)
