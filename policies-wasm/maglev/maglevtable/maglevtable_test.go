package maglevtable

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const testM = 65537

// backends returns n backends of weight 1 named like addresses.
func backends(n int) []Backend {
	bs := make([]Backend, n)
	for i := range bs {
		bs[i] = Backend{Name: "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256) + ":80", Weight: 1}
	}
	return bs
}

func mustBuild(t testing.TB, bs []Backend, m uint64) []int32 {
	t.Helper()
	table, err := Build(bs, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// counts returns the number of entries of each backend.
func counts(table []int32, n int) []int {
	c := make([]int, n)
	for _, idx := range table {
		c[idx]++
	}
	return c
}

// names maps a table to the names of its entries.
func names(table []int32, bs []Backend) []string {
	out := make([]string, len(table))
	for i, idx := range table {
		out[i] = bs[idx].Name
	}
	return out
}

func TestIsPrime(t *testing.T) {
	tests := []struct {
		m    uint64
		want bool
	}{
		{0, false},
		{1, false},
		{2, true},
		{3, true},
		{4, false},
		{37, true},
		{41, true},
		{1681, false}, // 41²
		{561, false},  // Carmichael
		{251, true},
		{65537, true},
		{65536, false},
		{655373, true},
		{1 << 24, false},
		{16777213, true}, // largest prime below 1<<24
		{16777215, false},
		{3215031751, false},          // strong pseudoprime to bases 2, 3, 5, 7
		{3825123056546413051, false}, // strong pseudoprime to bases 2 to 23
		{2147483647, true},           // 2^31-1
		{2305843009213693951, true},  // 2^61-1
		{18446744073709551557, true}, // largest prime below 2^64
		{18446744073709551615, false},
		{4294967291 * 4294967279, false}, // product of the two largest 32-bit primes
	}
	for _, tt := range tests {
		if got := IsPrime(tt.m); got != tt.want {
			t.Errorf("IsPrime(%d) = %v, want %v", tt.m, got, tt.want)
		}
	}
}

func TestIsPrimeMatchesSieve(t *testing.T) {
	const n = 200_000
	composite := make([]bool, n)
	for i := 2; i < n; i++ {
		if !composite[i] {
			for j := i * i; j < n; j += i {
				composite[j] = true
			}
		}
		if got := IsPrime(uint64(i)); got == composite[i] {
			t.Fatalf("IsPrime(%d) = %v", i, got)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name     string
		backends []Backend
		m        uint64
		err      string
	}{
		{"not prime", backends(3), 65536, "table size 65536 is not prime"},
		{"zero", backends(3), 0, "table size 0 is not prime"},
		{"one", backends(1), 1, "table size 1 is not prime"},
		{"too small", backends(20), 17, "table size 17 is smaller than the number of backends 20"},
		{"too large", backends(3), 16777259, "table size 16777259 exceeds the maximum 16777216"},
		{"huge", backends(3), 18446744073709551557, "exceeds the maximum"},
		{"not prime without backends", nil, 100, "table size 100 is not prime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table, err := Build(tt.backends, tt.m, nil)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want it to contain %q", err, tt.err)
			}
			if len(table) != 0 {
				t.Fatalf("table of %d entries with an error", len(table))
			}
		})
	}
}

func TestBuildNoBackends(t *testing.T) {
	table, err := Build(nil, 13, make([]int32, 5))
	if err != nil || len(table) != 0 {
		t.Fatalf("Build(nil) = %d entries, %v; want an empty table", len(table), err)
	}
	if got := Lookup(table, 42); got != -1 {
		t.Fatalf("Lookup(empty) = %d, want -1", got)
	}
}

func TestBuildFillsEveryEntry(t *testing.T) {
	for _, tt := range []struct {
		n int
		m uint64
	}{{1, 2}, {2, 2}, {1, 13}, {13, 13}, {5, 13}, {100, 251}, {251, 251}, {1000, testM}} {
		bs := backends(tt.n)
		for i := range bs {
			bs[i].Weight = uint32(i%7 + 1)
		}
		table := mustBuild(t, bs, tt.m)
		if uint64(len(table)) != tt.m {
			t.Fatalf("N=%d M=%d: %d entries", tt.n, tt.m, len(table))
		}
		for j, idx := range table {
			if idx < 0 || int(idx) >= tt.n {
				t.Fatalf("N=%d M=%d: entry %d = %d", tt.n, tt.m, j, idx)
			}
		}
	}
}

// TestHashesGolden pins the hash functions the package documentation states:
// tables must not change between versions, processes or platforms.
func TestHashesGolden(t *testing.T) {
	if got := fnv1a64(""); got != 14695981039346656037 {
		t.Errorf("fnv1a64(\"\") = %d", got)
	}
	if got := fnv1a64("a"); got != 0xaf63dc4c8601ec8c {
		t.Errorf("fnv1a64(\"a\") = %#x", got)
	}
	if got := fnv1a64("foobar"); got != 0x85944171f73967e8 {
		t.Errorf("fnv1a64(\"foobar\") = %#x", got)
	}
	if got := skipHash("a"); got != splitmix64(fnv1a64("a\x01")) {
		t.Errorf("skipHash(\"a\") = %#x, want splitmix64(fnv1a64(\"a\\x01\"))", got)
	}
	if got := splitmix64(0); got != 0 {
		t.Errorf("splitmix64(0) = %#x", got)
	}
	// The first output of the SplitMix64 generator seeded with 0.
	if got := splitmix64(0x9e3779b97f4a7c15); got != 0xe220a8397b1dcdaf {
		t.Errorf("splitmix64(golden gamma) = %#x", got)
	}
	for _, tt := range []struct {
		name         string
		offset, skip uint64
	}{
		{"10.0.0.1:80", goldenOffset1, goldenSkip1},
		{"", goldenOffsetEmpty, goldenSkipEmpty},
	} {
		if got := offsetHash(tt.name); got != tt.offset {
			t.Errorf("offsetHash(%q) = %#x, want %#x", tt.name, got, tt.offset)
		}
		if got := skipHash(tt.name); got != tt.skip {
			t.Errorf("skipHash(%q) = %#x, want %#x", tt.name, got, tt.skip)
		}
	}
}

// TestBuildGolden pins a small table, computed independently of this
// package from the algorithm the package documentation states.
func TestBuildGolden(t *testing.T) {
	bs := []Backend{
		{Name: "10.0.0.3:80", Weight: 1},
		{Name: "10.0.0.1:80", Weight: 2},
		{Name: "10.0.0.2:80", Weight: 1},
	}
	if table := mustBuild(t, bs, 31); !slices.Equal(table, goldenTable31) {
		t.Errorf("table\n%v, want\n%v", table, goldenTable31)
	}
	bs = nil
	for i := range 7 {
		bs = append(bs, Backend{Name: "b" + strconv.Itoa(i), Weight: uint32(i%3 + 1)})
	}
	bs = append(bs, Backend{Name: "a"})
	if table := mustBuild(t, bs, 61); !slices.Equal(table, goldenTable61) {
		t.Errorf("table\n%v, want\n%v", table, goldenTable61)
	}
}

func TestBuildIndependentOfOrder(t *testing.T) {
	for _, n := range []int{2, 10, 100, 1000} {
		bs := backends(n)
		for i := range bs {
			bs[i].Weight = uint32(i%10 + 1)
		}
		want := names(mustBuild(t, bs, testM), bs)

		shuffled := slices.Clone(bs)
		r := rand.New(rand.NewPCG(uint64(n), 1))
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		reversed := slices.Clone(bs)
		slices.Reverse(reversed)
		for _, other := range [][]Backend{shuffled, reversed} {
			if got := names(mustBuild(t, other, testM), other); !slices.Equal(got, want) {
				t.Fatalf("N=%d: reordered backends map slots to other names", n)
			}
		}
		if again := mustBuild(t, bs, testM); !slices.Equal(names(again, bs), want) {
			t.Fatalf("N=%d: second build differs", n)
		}
	}
}

func TestBuildDuplicateNames(t *testing.T) {
	bs := []Backend{{"a", 1}, {"b", 1}, {"a", 3}, {"a", 1}}
	table := mustBuild(t, bs, 601)
	c := counts(table, len(bs))
	// Shares 1:1:3:1 of 601 entries.
	for i, want := range []int{100, 100, 300, 100} {
		if c[i] < want-1 || c[i] > want+1 {
			t.Fatalf("counts %v, want about 100 100 300 100", c)
		}
	}
	// Identical duplicates are interchangeable; the names do not depend on
	// the order.
	other := []Backend{{"a", 1}, {"a", 3}, {"a", 1}, {"b", 1}}
	if !slices.Equal(names(table, bs), names(mustBuild(t, other, 601), other)) {
		t.Fatal("reordered duplicates map slots to other names")
	}
}

func TestBuildWeights(t *testing.T) {
	mixed, oneToTen := mixedWeights(100), mixedWeights(10)
	zero := backends(4) // weight 0 counts as 1
	zero[0].Weight, zero[1].Weight, zero[2].Weight, zero[3].Weight = 0, 1, 2, 0
	for _, tt := range []struct {
		name string
		bs   []Backend
	}{{"1..10", oneToTen}, {"100 mixed", mixed}, {"zero", zero}} {
		t.Run(tt.name, func(t *testing.T) {
			c := counts(mustBuild(t, tt.bs, testM), len(tt.bs))
			var sum float64
			for _, b := range tt.bs {
				sum += float64(max(b.Weight, 1))
			}
			for i, b := range tt.bs {
				ideal := testM * float64(max(b.Weight, 1)) / sum
				if dev := float64(c[i])/ideal - 1; dev > 0.01 || dev < -0.01 {
					t.Errorf("backend %d of weight %d: %d entries, ideal %.1f (%+.2f%%)",
						i, b.Weight, c[i], ideal, 100*dev)
				}
			}
		})
	}
}

// TestBuildWeightsRounding checks the bound of the package documentation on
// random weights: backend i owns within ½ + wᵢ/maxW + N·wᵢ/(2·sumW) entries
// of m·wᵢ/sumW.
func TestBuildWeightsRounding(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var worst, worstOfBound float64
	var within1, total int
	for range 1000 {
		n := r.IntN(200) + 1
		bs := backends(n)
		var sum, maxW float64
		for i := range bs {
			bs[i].Weight = uint32(r.IntN(1 << r.IntN(16)))
			w := float64(max(bs[i].Weight, 1))
			sum += w
			maxW = max(maxW, w)
		}
		m := uint64(4099)
		c := counts(mustBuild(t, bs, m), n)
		for i, b := range bs {
			w := float64(max(b.Weight, 1))
			ideal := float64(m) * w / sum
			bound := 0.5 + w/maxW + float64(n)*w/(2*sum)
			d := float64(c[i]) - ideal
			if d < 0 {
				d = -d
			}
			if d > bound {
				t.Fatalf("N=%d: backend of weight %d owns %d entries, ideal %.2f, bound %.2f",
					n, b.Weight, c[i], ideal, bound)
			}
			worst, worstOfBound = max(worst, d), max(worstOfBound, d/bound)
			if d <= 1 {
				within1++
			}
			total++
		}
	}
	t.Logf("largest deviation %.3f entries, %.2f of the bound; %.4f%% within one entry",
		worst, worstOfBound, 100*float64(within1)/float64(total))
}

// TestBuildWeightsSkewed covers the heap: one backend far heavier than 999
// others of weight 1. These claim their k-th entry in round (k−½)·W, and the
// heavy one one entry every round until the table is full.
func TestBuildWeightsSkewed(t *testing.T) {
	for _, tt := range []struct {
		heavy uint32
		light int // entries of each light backend
	}{
		{1_000_000, 0}, // ideal 0.07, rounds to 0
		{30_000, 2},    // ideal 2.11; claims in rounds 15000 and 45000 of 63539
	} {
		bs := backends(1000)
		bs[500].Weight = tt.heavy
		c := counts(mustBuild(t, bs, testM), len(bs))
		for i, n := range c {
			want := tt.light
			if i == 500 {
				want = testM - 999*tt.light
			}
			if n != want {
				t.Fatalf("heavy weight %d: backend %d owns %d entries, want %d", tt.heavy, i, n, want)
			}
		}
	}
}

// loadRatios returns the largest and the smallest count of a backend over
// the mean.
func loadRatios(table []int32, n int) (maxRatio, minRatio float64) {
	c := counts(table, n)
	mean := float64(len(table)) / float64(n)
	return float64(slices.Max(c)) / mean, float64(slices.Min(c)) / mean
}

func TestBuildBalance(t *testing.T) {
	for _, n := range []int{10, 100, 650, 1000} {
		maxRatio, minRatio := loadRatios(mustBuild(t, backends(n), testM), n)
		t.Logf("N=%d M=%d: max/mean %.4f, min/mean %.4f", n, testM, maxRatio, minRatio)
		if n <= 650 && maxRatio > 1.01 {
			t.Errorf("N=%d: max/mean %.4f > 1.01", n, maxRatio)
		}
	}
}

// moved returns the fraction of entries whose backend name differs.
func moved(before, after []string) float64 {
	var k int
	for i := range before {
		if before[i] != after[i] {
			k++
		}
	}
	return float64(k) / float64(len(before))
}

// disruption returns the fractions of entries that move when the middle
// backend of n is removed, and when one is added, each as a multiple of the
// share of the backend removed or added (1/n and 1/(n+1)): 1 is the least
// possible.
func disruption(t testing.TB, n int, m uint64) (remove, add float64) {
	bs := backends(n + 1)
	base := bs[:n]
	before := names(mustBuild(t, base, m), base)

	removed := slices.Delete(slices.Clone(base), n/2, n/2+1)
	remove = moved(before, names(mustBuild(t, removed, m), removed)) * float64(n)

	added := bs // base and one more
	add = moved(before, names(mustBuild(t, added, m), added)) * float64(n+1)
	return remove, add
}

// TestBuildDisruption bounds the entries that move when one backend leaves
// or joins. Beyond the share of that backend, entries move because the
// others' claims shift: Maglev trades this for its balance (section 5.3 of
// the paper), and it grows with N/M. With random permutations instead of
// hashed ones, 1/N-multiples of 1.02-1.03 (N=10), 1.56-1.60 (N=100) and
// 3.4-3.7 (N=300) at M=65537 are typical, so bounds below them would test
// the algorithm rather than this implementation.
func TestBuildDisruption(t *testing.T) {
	for _, tt := range []struct {
		n     int
		bound float64 // 0: report only
	}{{10, 1.5}, {100, 1.7}, {1000, 0}} {
		remove, add := disruption(t, tt.n, testM)
		t.Logf("N=%d M=%d: removing one moves %.3f/N, adding one %.3f/(N+1)", tt.n, testM, remove, add)
		if tt.bound > 0 && (remove > tt.bound || add > tt.bound) {
			t.Errorf("N=%d: removing one moves %.3f/N, adding one %.3f/(N+1), want ≤ %.1f",
				tt.n, remove, add, tt.bound)
		}
		if remove < 0.99 || add < 0.99 {
			t.Errorf("N=%d: moved less than the share of the backend removed or added", tt.n)
		}
	}
}

// TestQualityReport logs the quality figures of the benchmark report, for
// M=65537 and, to show the effect of a larger table, M=655373.
func TestQualityReport(t *testing.T) {
	t.Logf("equal weights; moves are multiples of the share of the backend removed (1/N) or added (1/(N+1))")
	t.Logf("%7s  %5s  %8s  %8s  %8s  %8s", "M", "N", "max/mean", "min/mean", "remove", "add")
	for _, m := range []uint64{testM, 655373} {
		for _, n := range []int{10, 100, 1000} {
			maxRatio, minRatio := loadRatios(mustBuild(t, backends(n), m), n)
			remove, add := disruption(t, n, m)
			t.Logf("%7d  %5d  %8.4f  %8.4f  %8.3f  %8.3f", m, n, maxRatio, minRatio, remove, add)
		}
	}

	t.Logf("weights 1..10 (N=10: 1, 2, …, 10; else random), M=%d: deviation from m·w/sumW", testM)
	t.Logf("%5s  %9s  %12s  %12s", "N", "entries", "relative", "rel. w ≥ 5")
	for _, n := range []int{10, 100, 1000} {
		bs := mixedWeights(n)
		var sum float64
		for _, b := range bs {
			sum += float64(b.Weight)
		}
		c := counts(mustBuild(t, bs, testM), n)
		var dev, rel, relHeavy float64
		for i, b := range bs {
			ideal := testM * float64(b.Weight) / sum
			d := float64(c[i]) - ideal
			d = max(d, -d)
			dev, rel = max(dev, d), max(rel, d/ideal)
			if b.Weight >= 5 {
				relHeavy = max(relHeavy, d/ideal)
			}
		}
		t.Logf("%5d  %9.2f  %11.2f%%  %11.2f%%", n, dev, 100*rel, 100*relHeavy)
	}
}

// mixedWeights returns n backends of weights 1..10: in order for n=10, at
// random otherwise.
func mixedWeights(n int) []Backend {
	bs := backends(n)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range bs {
		if n == 10 {
			bs[i].Weight = uint32(i + 1)
		} else {
			bs[i].Weight = uint32(r.IntN(10) + 1)
		}
	}
	return bs
}

func TestScanMatchesHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var scan, heap Builder
	for range 50 {
		n := r.IntN(251) + 1
		m := uint64(251)
		if r.IntN(2) == 0 {
			m = 4099
		}
		bs := backends(n)
		for i := range bs {
			bs[i].Weight = uint32(r.IntN(1 << r.IntN(20)))
		}
		a, err := scan.build(bs, m, nil, fillScanning)
		if err != nil {
			t.Fatal(err)
		}
		b, err := heap.build(bs, m, nil, fillHeap)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a, b) {
			t.Fatalf("N=%d M=%d: scan and heap differ", n, m)
		}
	}
}

func TestBuilderReuse(t *testing.T) {
	var b Builder
	var dst []int32
	for _, n := range []int{100, 3, 1000, 10} {
		bs := backends(n)
		for i := range bs {
			bs[i].Weight = uint32(i%3 + 1)
		}
		bs[0].Weight = 1000 // heap
		for _, m := range []uint64{4099, testM} {
			var err error
			dst, err = b.Build(bs, m, dst)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dst, mustBuild(t, bs, m)) {
				t.Fatalf("N=%d M=%d: reused Builder differs from a fresh one", n, m)
			}
		}
	}
}

func TestBuildAllocs(t *testing.T) {
	for _, tt := range []struct {
		name  string
		heavy uint32
	}{{"scan", 1}, {"heap", 1000}} {
		bs := backends(100)
		bs[7].Weight = tt.heavy
		var b Builder
		dst, _ := b.Build(bs, 4099, nil)
		if a := testing.AllocsPerRun(10, func() { dst, _ = b.Build(bs, 4099, dst) }); a != 0 {
			t.Errorf("%s: %v allocations per Build, want 0", tt.name, a)
		}
	}
}

func TestLookup(t *testing.T) {
	table := []int32{4, 5, 6}
	for _, tt := range []struct {
		hash uint64
		want int32
	}{{0, 4}, {1, 5}, {5, 6}, {1<<64 - 1, 4}} { // 2^64-1 is divisible by 3
		if got := Lookup(table, tt.hash); got != tt.want {
			t.Errorf("Lookup(%d) = %d, want %d", tt.hash, got, tt.want)
		}
	}
	if got := Lookup(nil, 1); got != -1 {
		t.Errorf("Lookup(nil) = %d, want -1", got)
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		bs := backends(n)
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			var bl Builder
			var dst []int32
			for b.Loop() {
				var err error
				if dst, err = bl.Build(bs, testM, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("N=1000/weights=1..10", func(b *testing.B) {
		bs := backends(1000)
		for i := range bs {
			bs[i].Weight = uint32(i%10 + 1)
		}
		b.ReportAllocs()
		var bl Builder
		var dst []int32
		for b.Loop() {
			dst, _ = bl.Build(bs, testM, dst)
		}
	})
	b.Run("N=1000/fresh", func(b *testing.B) {
		bs := backends(1000)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = Build(bs, testM, nil)
		}
	})
}

// BenchmarkBuildSkewed compares the two ways of filling for one backend of
// weight W among N of weight 1; the ratio r = N·W/sumW decides between them.
func BenchmarkBuildSkewed(b *testing.B) {
	for _, n := range []int{100, 1000} {
		for _, w := range []uint32{16, 64, 256} {
			bs := backends(n)
			bs[0].Weight = w
			r := n * int(w) / (n - 1 + int(w))
			for _, mode := range []struct {
				name string
				mode fillMode
			}{{"scan", fillScanning}, {"heap", fillHeap}} {
				name := "N=" + strconv.Itoa(n) + "/W=" + strconv.Itoa(int(w)) + "/r=" + strconv.Itoa(r) + "/" + mode.name
				b.Run(name, func(b *testing.B) {
					var bl Builder
					dst := make([]int32, testM)
					for b.Loop() {
						_, _ = bl.build(bs, testM, dst, mode.mode)
					}
				})
			}
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	table := mustBuild(b, backends(100), testM)
	var sink int32
	for i := uint64(0); b.Loop(); i++ {
		sink += Lookup(table, i*0x9e3779b97f4a7c15)
	}
	_ = sink
}

// Golden values, computed by an independent implementation (a few lines of
// Python following the package documentation and Pseudocode 1 literally,
// with permutation[j] = (offset + j·skip) mod m).
const (
	goldenOffset1     = 0xdbbc907f21531a73
	goldenSkip1       = 0xa7a5c12067b59391
	goldenOffsetEmpty = 0xf52a15e9a9b5e89b
	goldenSkipEmpty   = 0xaa1093e3c79ab7f9
)

var goldenTable31 = []int32{
	2, 1, 0, 0, 2, 1, 1, 1, 1, 0, 0, 1, 2, 1, 1, 1,
	2, 0, 1, 2, 1, 1, 2, 2, 1, 1, 0, 2, 1, 0, 0,
}

// goldenTable61 is the table of b0…b6 of weights 1, 2, 3, 1, 2, 3, 1 and
// then "a" of weight 0.
var goldenTable61 = []int32{
	5, 3, 2, 1, 3, 0, 4, 1, 2, 2, 1, 6, 0, 7, 1, 2,
	2, 3, 5, 5, 7, 5, 6, 4, 1, 4, 4, 4, 1, 2, 7, 2,
	1, 7, 5, 2, 2, 5, 5, 5, 5, 5, 2, 2, 6, 4, 4, 4,
	4, 2, 1, 5, 3, 7, 0, 6, 2, 1, 5, 0, 5,
}
