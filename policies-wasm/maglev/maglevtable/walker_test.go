package maglevtable

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// walkAll returns the backends Walk visits, accepting none.
func walkAll(w *Walker, table []int32, n int, hash uint64) (visited []int32, got int32) {
	got = w.Walk(table, n, hash, func(idx int32) bool {
		visited = append(visited, idx)
		return false
	})
	return visited, got
}

func TestWalkOrder(t *testing.T) {
	table := []int32{2, 2, 0, 2, 1, 0, 3}
	tests := []struct {
		name string
		n    int
		hash uint64
		want []int32
	}{
		{"from 1", 4, 1, []int32{2, 0, 1, 3}},
		{"wraps", 4, 5, []int32{0, 3, 2, 1}},
		{"hash modulo m", 4, 7*1000 + 5, []int32{0, 3, 2, 1}},
		{"absent backend ends after one pass", 6, 0, []int32{2, 0, 1, 3}},
		{"out of range entries skipped", 2, 0, []int32{0, 1}},
	}
	var w Walker
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			visited, got := walkAll(&w, table, tt.n, tt.hash)
			if !slices.Equal(visited, tt.want) {
				t.Fatalf("visited %v, want %v", visited, tt.want)
			}
			if got != tt.want[0] {
				t.Fatalf("Walk = %d, want the first, %d", got, tt.want[0])
			}
		})
	}
}

func TestWalkAccepts(t *testing.T) {
	table := []int32{2, 2, 0, 2, 1, 0, 3}
	var w Walker
	var calls int
	got := w.Walk(table, 4, 1, func(idx int32) bool {
		calls++
		return idx == 1
	})
	if got != 1 || calls != 3 {
		t.Fatalf("Walk = %d after %d calls, want 1 after 3", got, calls)
	}
	if got := w.Walk(table, 4, 1, nil); got != 2 {
		t.Fatalf("Walk(nil accept) = %d, want 2", got)
	}
	for _, n := range []int{0, 4} {
		if got := w.Walk(nil, n, 1, func(int32) bool { t.Fatal("accept called"); return true }); got != -1 {
			t.Fatalf("Walk(empty table, %d backends) = %d, want -1", n, got)
		}
	}
}

// TestWalkMatchesNaive compares Walk with a direct reading of its
// definition on built tables, across changes of nBackends and a wrap of the
// generation counter.
func TestWalkMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var w Walker
	for round := range 200 {
		n := r.IntN(60) + 1
		bs := backends(n)
		for i := range bs {
			bs[i].Weight = uint32(r.IntN(4))
		}
		table := mustBuild(t, bs, 251)
		if round == 100 {
			w.gen = math.MaxUint32 - 2
		}
		hash := r.Uint64()
		stop := int32(r.IntN(n + 1)) // n: accept none

		var want []int32
		seen := map[int32]bool{}
		for j := range table {
			idx := table[(hash%uint64(len(table))+uint64(j))%uint64(len(table))]
			if !seen[idx] {
				seen[idx] = true
				want = append(want, idx)
			}
		}
		var visited []int32
		got := w.Walk(table, n, hash, func(idx int32) bool {
			visited = append(visited, idx)
			return idx == stop
		})
		wantGot := want[0]
		if k := slices.Index(want, stop); k >= 0 {
			want, wantGot = want[:k+1], stop
		}
		if !slices.Equal(visited, want) {
			t.Fatalf("round %d: visited %v, want %v", round, visited, want)
		}
		if got != wantGot {
			t.Fatalf("round %d: Walk = %d, want %d", round, got, wantGot)
		}
	}
}

func TestWalkAllocs(t *testing.T) {
	table := mustBuild(t, backends(100), 4099)
	var w Walker
	k := 0
	accept := func(int32) bool { k++; return k%3 == 0 }
	w.Walk(table, 100, 0, accept)
	hash := uint64(0)
	if a := testing.AllocsPerRun(100, func() {
		hash += 0x9e3779b97f4a7c15
		w.Walk(table, 100, hash, accept)
	}); a != 0 {
		t.Fatalf("%v allocations per Walk, want 0", a)
	}
}

func BenchmarkWalk(b *testing.B) {
	for _, n := range []int{10, 1000} {
		table := mustBuild(b, backends(n), testM)
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			var w Walker
			var sink int32
			for i := uint64(0); b.Loop(); i++ {
				rejected := 0
				sink += w.Walk(table, n, i*0x9e3779b97f4a7c15, func(int32) bool {
					rejected++
					return rejected > 2
				})
			}
			_ = sink
		})
	}
}
