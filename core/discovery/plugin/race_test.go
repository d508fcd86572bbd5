//go:build race

package plugin

func init() { raceEnabled = true }
