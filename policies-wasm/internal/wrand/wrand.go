// Package wrand draws endpoints at random in proportion to their weights,
// from the random number the host gives each pick. It is shared by the
// default modules.
package wrand

import "math/bits"

// Table draws indexes in proportion to weights. The zero value is empty.
//
// A draw maps the random number into [0, total) with one multiplication
// (Lemire's method) rather than a division, and skips the search when all
// weights are equal: a division costs more than the rest of a pick, above
// all in a Wasm guest.
type Table struct {
	cum     []uint64 // cumulative weights
	total   uint64
	uniform bool // all weights equal
}

// Reset sets the weights (each at least 1) and reuses the table's memory.
func (t *Table) Reset(weights func(i int) uint32, n int) {
	t.cum = t.cum[:0]
	t.total = 0
	t.uniform = true
	for i := range n {
		w := uint64(max(weights(i), 1))
		if i > 0 && w != t.cum[0] {
			t.uniform = false
		}
		t.total += w
		t.cum = append(t.cum, t.total)
	}
}

// below maps r uniformly into [0, n).
func below(r, n uint64) uint64 {
	hi, _ := bits.Mul64(r, n)
	return hi
}

// Len returns the number of indexes.
func (t *Table) Len() int { return len(t.cum) }

// Draw returns an index for the random number r: index i with probability
// weight(i)/total. It panics on an empty table.
func (t *Table) Draw(r uint64) int {
	if t.uniform {
		return int(below(r, uint64(len(t.cum))))
	}
	return t.search(below(r, t.total))
}

// search returns the index whose cumulative range holds x.
func (t *Table) search(x uint64) int {
	lo, hi := 0, len(t.cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if t.cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// DrawExcept is Draw over every index but except, for a second candidate
// that differs from the first. It needs at least two indexes.
func (t *Table) DrawExcept(r uint64, except int) int {
	if t.uniform {
		j := int(below(r, uint64(len(t.cum)-1)))
		if j >= except {
			j++
		}
		return j
	}
	start := uint64(0)
	if except > 0 {
		start = t.cum[except-1]
	}
	w := t.cum[except] - start
	x := below(r, t.total-w)
	if x >= start {
		x += w
	}
	return t.search(x)
}

// Weight returns index i's weight.
func (t *Table) Weight(i int) uint64 {
	if i == 0 {
		return t.cum[0]
	}
	return t.cum[i] - t.cum[i-1]
}

// Next derives the k-th independent random number from one pick's random
// number (splitmix64), for drawing several candidates.
func Next(r uint64, k int) uint64 {
	z := r + uint64(k+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
