//go:build !wasip1

package health

import "os"

func hostLog(level int32, msg string) { os.Stderr.WriteString("health: " + msg + "\n") }
