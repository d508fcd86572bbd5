//go:build !wasip1

package lb

import "os"

// hostLog writes to stderr when a policy runs natively (in its own tests).
func hostLog(level Level, msg string) {
	os.Stderr.WriteString("lb " + levelName(level) + ": " + msg + "\n")
}

func levelName(l Level) string {
	switch l {
	case Debug:
		return "debug"
	case Info:
		return "info"
	case Warn:
		return "warn"
	}
	return "error"
}
