package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/wproxy/wproxy/core/health"
)

// cmdAvailability prints the theoretical availability of servers that fail
// independently: 1 − Π(1 − aᵢ). Each argument is an availability as a
// fraction (0.99) or a percentage (99%), optionally repeated: 3x99.5%.
func cmdAvailability(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: wproxy availability A [A ...]   (A: 0.99, 99%, or a count such as 3x99.5%)")
		return exitConfig
	}
	var as []float64
	for _, arg := range args {
		n, a, err := parseAvailability(arg)
		if err != nil {
			fmt.Fprintf(stderr, "wproxy availability: %q: %v\n", arg, err)
			return exitConfig
		}
		for range n {
			as = append(as, a)
		}
	}
	v := health.PoolAvailability(as)
	fmt.Fprintf(stdout, "%s (%s%%)\n", formatFraction(v), formatFraction(v*100))
	return exitOK
}

// parseAvailability reads "0.99", "99%", "3x99.5%" or "2x0.999".
func parseAvailability(s string) (count int, a float64, err error) {
	count = 1
	if c, rest, ok := strings.Cut(s, "x"); ok {
		if count, err = strconv.Atoi(c); err != nil || count < 1 || count > 1000 {
			return 0, 0, errors.New("the count before x must be a whole number from 1 to 1000")
		}
		s = rest
	}
	pct := strings.HasSuffix(s, "%")
	if a, err = strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64); err != nil {
		return 0, 0, errors.New("not a number")
	}
	if pct {
		a /= 100
	}
	if !(a >= 0 && a <= 1) {
		return 0, 0, errors.New("an availability is from 0 to 1, or 0% to 100%")
	}
	return count, a, nil
}

// formatFraction prints v with up to 10 decimals and no trailing zeros.
func formatFraction(v float64) string {
	s := strconv.FormatFloat(v, 'f', 10, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
