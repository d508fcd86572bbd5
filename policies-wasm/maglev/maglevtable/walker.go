package maglevtable

// Walker visits the distinct backends of a table in the order a key prefers
// them, for consistent hashing with bounded loads (Mirrokni, Thorup and
// Zadimoghaddam, "Consistent Hashing with Bounded Loads", SODA 2018): a key
// goes to the first backend in its order that is not over its load bound.
//
// The order of a key with hash h in a table of m entries is the backends of
// entries h%m, h%m+1, h%m+2, … (wrapping around), each backend counted at its
// first entry only. The zero value is ready to use. A Walker is not safe for
// concurrent use; after its first walk over a given number of backends, it
// does not allocate.
type Walker struct {
	seen []uint32 // seen[i] == gen: backend i was visited in this walk
	gen  uint32
}

// Walk calls accept on the backends of table in hash's order (see Walker)
// until accept returns true, and returns the accepted backend. If accept
// accepts none of them, or is nil, Walk returns the first backend of the
// order. It returns -1 for an empty table.
//
// nBackends is the number of backends the table was built for. Walk stops
// after nBackends distinct backends, or after one pass over the table, since
// a backend with a tiny weight may own no entry. Entries outside
// [0, nBackends) are skipped.
func (w *Walker) Walk(table []int32, nBackends int, hash uint64, accept func(idx int32) bool) int32 {
	m := uint64(len(table))
	if m == 0 || nBackends <= 0 {
		return -1
	}
	if cap(w.seen) < nBackends || w.gen == 1<<32-1 {
		w.reset(nBackends)
	}
	w.gen++
	gen := w.gen
	seen := w.seen[:nBackends]
	first := int32(-1)
	visited := 0
	s := hash % m
	for range m {
		idx := table[s]
		if s++; s == m {
			s = 0
		}
		if uint32(idx) >= uint32(len(seen)) || seen[idx] == gen {
			continue
		}
		seen[idx] = gen
		if first < 0 {
			first = idx
			if accept == nil {
				return idx
			}
		}
		if accept(idx) {
			return idx
		}
		if visited++; visited == nBackends {
			break
		}
	}
	return first
}

// reset makes room for n backends and clears seen, for gen to start over.
func (w *Walker) reset(n int) {
	if cap(w.seen) < n {
		w.seen = make([]uint32, n)
	} else {
		clear(w.seen[:cap(w.seen)])
	}
	w.gen = 0
}
