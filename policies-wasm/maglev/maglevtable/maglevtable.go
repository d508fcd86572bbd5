// Package maglevtable builds Maglev consistent-hashing lookup tables, as
// described in section 3.4 of Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016.
//
// A table has a prime number m of entries, each the index of a backend.
// Every backend has a permutation of the m entries derived from its name, and
// the backends take turns claiming the next free entry of their permutation
// (Pseudocode 1 of the paper) until the table is full. A key is mapped to a
// backend by Lookup, the entry at its hash modulo m. With equal weights every
// backend owns ⌊m/N⌋ or ⌈m/N⌉ entries, and adding or removing one backend
// moves few entries besides those the change must move; the paper advises
// m > 100·N, and the extra movement grows with N/m. A Walker lists a key's
// backends in table order, for consistent hashing with bounded loads.
//
// Tables are plain slices: once built, any number of goroutines may call
// Lookup on one. A Builder or a Walker serves one goroutine at a time.
//
// # Hashes
//
// The permutation of the backend named s starts at offset = h1(s) mod m and
// steps by skip = h2(s) mod (m−1) + 1, where
//
//	h1(s) = splitmix64(fnv1a64(s))
//	h2(s) = splitmix64(fnv1a64(s + "\x01"))
//
// fnv1a64 is 64-bit FNV-1a (offset basis 14695981039346656037, prime
// 1099511628211) over the bytes of s, and splitmix64 is the finalizer of
// Steele et al.'s SplitMix64 (xor-shift 30, multiply 0xbf58476d1ce4e5b9,
// xor-shift 27, multiply 0x94d049bb133111eb, xor-shift 31). Both are pure
// integer arithmetic, so every process on every platform builds the same
// table from the same backends.
//
// # Weights
//
// A backend of weight w (0 counts as 1) claims entries at w/maxW times the
// rate of the heaviest backend. Each round every backend, in the order below,
// adds w to a credit that starts at maxW/2 and, when the credit reaches maxW,
// claims its next free entry and lowers the credit by maxW. The k-th entry of
// a backend is therefore claimed in round ⌈(k−½)·maxW/w⌉, which depends only
// on the ratios of the weights. Starting at half a claim rounds every share
// to the nearest whole entry rather than down (as Webster's apportionment
// method does), so that heavy backends do not gain what light ones lose:
// every backend owns within about one entry of m·w/sumW, and one whose share
// is below half an entry may own none. With equal weights this is exactly the
// paper's Pseudocode 1. The credits are integers (kept doubled), so the
// table is exact on every platform.
//
// # Order
//
// The order of the backends list does not matter. Build sorts a private list
// of the backends by name (then weight, then position, which only separates backends that
// are identical in name and weight) and fills the table in that order, but
// stores the caller's indexes. Two processes that list the same backends in
// different orders therefore build tables whose entries name the same backend
// in every slot.
package maglevtable

import (
	"cmp"
	"errors"
	"math/bits"
	"slices"
	"strconv"
)

// MaxSize is the largest table size Build accepts.
const MaxSize = 1 << 24

// Backend is one target of the table.
type Backend struct {
	// Name identifies the backend, usually its address ("10.0.0.1:80"). It
	// alone decides the backend's permutation.
	Name string
	// Weight is the backend's relative share of the table. Zero counts as 1.
	Weight uint32
}

// IsPrime reports whether m is a prime number. It is exact for every uint64
// (deterministic Miller-Rabin).
func IsPrime(m uint64) bool {
	if m < 2 {
		return false
	}
	for _, p := range [...]uint64{2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37} {
		if m%p == 0 {
			return m == p
		}
	}
	if m < 41*41 {
		return true
	}
	d, s := m-1, 0
	for d%2 == 0 {
		d /= 2
		s++
	}
	// These bases decide primality for every m < 2^64 (Sorenson and Webster).
	for _, a := range [...]uint64{2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37} {
		x := powMod(a, d, m)
		if x == 1 || x == m-1 {
			continue
		}
		composite := true
		for range s - 1 {
			x = mulMod(x, x, m)
			if x == m-1 {
				composite = false
				break
			}
		}
		if composite {
			return false
		}
	}
	return true
}

func mulMod(a, b, m uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	_, r := bits.Div64(hi, lo, m) // hi < m because a, b < m
	return r
}

func powMod(a, e, m uint64) uint64 {
	r := uint64(1)
	a %= m
	for ; e > 0; e >>= 1 {
		if e&1 == 1 {
			r = mulMod(r, a, m)
		}
		a = mulMod(a, a, m)
	}
	return r
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnv1a64 is 64-bit FNV-1a of s.
func fnv1a64(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// splitmix64 is the finalizer of SplitMix64.
func splitmix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// offsetHash returns h1(name) (see the package documentation); the permutation
// of name in a table of size m starts at offsetHash(name) % m.
func offsetHash(name string) uint64 { return splitmix64(fnv1a64(name)) }

// skipHash returns h2(name) (see the package documentation); the permutation
// of name in a table of size m steps by skipHash(name) % (m-1) + 1.
func skipHash(name string) uint64 { return splitmix64((fnv1a64(name) ^ 1) * fnvPrime) }

// backendState is the permutation state of one backend during a build.
type backendState struct {
	next   uint32 // next entry of the permutation to try
	skip   uint32
	idx    int32  // the caller's index
	weight uint32 // at least 1
	credit uint64 // scan: twice the credit
	claims uint64 // heap: entries claimed so far
}

// Builder builds tables, reusing its scratch buffers from one build to the
// next. The zero value is ready to use. A Builder is not safe for concurrent
// use; the tables it returns do not refer to it.
type Builder struct {
	state []backendState
	order []int32
	keys  []uint64
}

// Build returns a table of m entries for backends. See Builder.Build.
func Build(backends []Backend, m uint64, dst []int32) ([]int32, error) {
	var b Builder
	return b.Build(backends, m, dst)
}

// Build returns a table of m entries, each the index in backends of the
// backend that owns it, filled as the package documentation describes. It
// reuses dst's storage when its capacity is at least m. The table does not
// depend on the order of backends, other than through the indexes stored.
//
// m must be a prime number, at least len(backends) and at most MaxSize; an
// error says which condition failed. With no backends (and a valid m) Build
// returns dst[:0] and no error: the empty table, for which Lookup returns -1.
//
// Build takes O(m log m) time whatever the weights: about m·ln m probes of
// the table, the sort of the backends, and per entry either a scan step or a
// heap operation. It allocates only when the Builder's buffers or dst are too
// small.
func (b *Builder) Build(backends []Backend, m uint64, dst []int32) ([]int32, error) {
	return b.build(backends, m, dst, fillAuto)
}

// fillMode chooses how build claims entries; tests force either way.
type fillMode int

const (
	fillAuto fillMode = iota
	fillScanning
	fillHeap
)

func (b *Builder) build(backends []Backend, m uint64, dst []int32, mode fillMode) ([]int32, error) {
	n := len(backends)
	switch {
	case m > MaxSize:
		return dst[:0], errors.New("maglevtable: table size " + strconv.FormatUint(m, 10) +
			" exceeds the maximum " + strconv.Itoa(MaxSize))
	case !IsPrime(m):
		return dst[:0], errors.New("maglevtable: table size " + strconv.FormatUint(m, 10) + " is not prime")
	case uint64(n) > m:
		return dst[:0], errors.New("maglevtable: table size " + strconv.FormatUint(m, 10) +
			" is smaller than the number of backends " + strconv.Itoa(n))
	case n == 0:
		return dst[:0], nil
	}

	if uint64(cap(dst)) < m {
		dst = make([]int32, m)
	}
	table := dst[:m]
	for i := range table {
		table[i] = -1
	}

	order := b.sortedOrder(backends)
	if cap(b.state) < n {
		b.state = make([]backendState, n)
	}
	st := b.state[:n]
	var maxW, sumW uint64
	for i, j := range order {
		be := &backends[j]
		w := max(be.Weight, 1)
		maxW = max(maxW, uint64(w))
		sumW += uint64(w)
		st[i] = backendState{
			next:   uint32(offsetHash(be.Name) % m),
			skip:   uint32(skipHash(be.Name)%(m-1) + 1),
			idx:    j,
			weight: w,
		}
	}

	// Scanning all backends every round costs about m·N·maxW/sumW steps on
	// top of the claims; a heap of next-claim rounds costs about log N per
	// claim. Both fill the table identically (TestScanMatchesHeap); the
	// scan is faster up to N·maxW/sumW ≈ 30-60 (BenchmarkBuildSkewed).
	if mode == fillAuto {
		mode = fillHeap
		if uint64(n)*maxW <= scanFactor*sumW {
			mode = fillScanning
		}
	}
	if mode == fillScanning {
		fillScan(table, st, uint32(m), maxW)
	} else {
		b.fillFromHeap(table, st, uint32(m), maxW)
	}
	return table, nil
}

// scanFactor bounds the ratio of scan steps to table entries (N·maxW/sumW)
// beyond which Build switches from scanning to the heap.
const scanFactor = 32

// sortedOrder returns the caller's indexes sorted by name, then weight, then
// index, in b.order.
func (b *Builder) sortedOrder(backends []Backend) []int32 {
	n := len(backends)
	if cap(b.order) < n {
		b.order = make([]int32, n)
	}
	order := b.order[:n]
	for i := range order {
		order[i] = int32(i)
	}
	compare := func(x, y int32) int {
		bx, by := &backends[x], &backends[y]
		if c := cmp.Compare(bx.Name, by.Name); c != 0 {
			return c
		}
		if c := cmp.Compare(max(bx.Weight, 1), max(by.Weight, 1)); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	}
	if !slices.IsSortedFunc(order, compare) {
		slices.SortFunc(order, compare)
	}
	return order
}

// claim gives backend s the next free entry of its permutation. The table
// must have a free entry.
func claim(table []int32, s *backendState, m uint32) {
	c, skip := s.next, s.skip
	for table[c] >= 0 {
		c += skip
		if c >= m {
			c -= m
		}
	}
	table[c] = s.idx
	c += skip
	if c >= m {
		c -= m
	}
	s.next = c
}

// fillScan is Pseudocode 1 with credits: round after round, every backend in
// order adds its weight to its credit and claims an entry when the credit
// reaches maxW. Credits start at maxW/2; they are kept doubled, to stay
// integers.
func fillScan(table []int32, st []backendState, m uint32, maxW uint64) {
	for i := range st {
		st[i].credit = maxW
	}
	left := m
	for {
		for i := range st {
			s := &st[i]
			s.credit += 2 * uint64(s.weight)
			if s.credit < 2*maxW {
				continue
			}
			s.credit -= 2 * maxW
			claim(table, s, m)
			if left--; left == 0 {
				return
			}
		}
	}
}

// fillFromHeap claims the entries in the order fillScan does (a backend's
// k-th claim in round ⌈(k−½)·maxW/w⌉, the claims of one round in the order
// of st), taking the next claim from a min-heap instead of scanning every
// backend every round.
//
// A heap key is round<<24 | index, rounds clamped below 1<<25: the heaviest
// backend claims an entry every round, so the table is full after m ≤ 1<<24
// rounds and a clamped key is never taken.
func (b *Builder) fillFromHeap(table []int32, st []backendState, m uint32, maxW uint64) {
	n := len(st)
	if cap(b.keys) < n {
		b.keys = make([]uint64, n)
	}
	h := b.keys[:n]
	key := func(i int, claims uint64) uint64 {
		round := min(ceilDiv((2*claims+1)*maxW, 2*uint64(st[i].weight)), maxRound)
		return round<<24 | uint64(i)
	}
	for i := range st {
		st[i].claims = 0
		h[i] = key(i, 0)
	}
	for i := n/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
	for range m {
		i := int(h[0] & (1<<24 - 1))
		s := &st[i]
		claim(table, s, m)
		s.claims++
		h[0] = key(i, s.claims)
		siftDown(h, 0)
	}
}

// maxRound clamps heap rounds; see fillFromHeap.
const maxRound = 1<<25 - 1

// siftDown restores the min-heap property of h below i.
func siftDown(h []uint64, i int) {
	n := len(h)
	x := h[i]
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && h[r] < h[c] {
			c = r
		}
		if h[c] >= x {
			break
		}
		h[i] = h[c]
		i = c
	}
	h[i] = x
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// Lookup returns the entry of table for hash, table[hash % len(table)], or
// -1 if the table is empty. It only reads the table.
func Lookup(table []int32, hash uint64) int32 {
	if len(table) == 0 {
		return -1
	}
	return table[hash%uint64(len(table))]
}
