package wrand

import (
	"math/rand/v2"
	"testing"
)

func TestDrawFollowsWeights(t *testing.T) {
	w := []uint32{1, 2, 3, 0}
	var tab Table
	tab.Reset(func(i int) uint32 { return w[i] }, len(w))
	counts := make([]int, len(w))
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 700_000
	for range n {
		counts[tab.Draw(rng.Uint64())]++
	}
	// Weights 1, 2, 3, 1 (zero counts as one): shares 1/7, 2/7, 3/7, 1/7.
	for i, want := range []float64{1.0 / 7, 2.0 / 7, 3.0 / 7, 1.0 / 7} {
		got := float64(counts[i]) / n
		if got < want*0.97 || got > want*1.03 {
			t.Errorf("index %d: share %.4f, want %.4f", i, got, want)
		}
	}
	if tab.Weight(2) != 3 || tab.Weight(0) != 1 || tab.Len() != 4 {
		t.Fatal("Weight or Len")
	}
}

func TestNextIsSpread(t *testing.T) {
	seen := map[uint64]bool{}
	for k := range 1000 {
		seen[Next(42, k)%1000] = true
	}
	if len(seen) < 550 {
		t.Fatalf("only %d distinct values of 1000", len(seen))
	}
}

func TestDrawExceptUniform(t *testing.T) {
	var tab Table
	tab.Reset(func(int) uint32 { return 3 }, 5)
	rng := rand.New(rand.NewPCG(7, 8))
	counts := make([]int, 5)
	for range 100_000 {
		counts[tab.DrawExcept(rng.Uint64(), 2)]++
	}
	if counts[2] != 0 {
		t.Fatal("drew the excluded index")
	}
	for i, c := range counts {
		if i != 2 && (c < 24_000 || c > 26_000) {
			t.Fatalf("counts %v", counts)
		}
	}
}

func TestDrawExcept(t *testing.T) {
	w := []uint32{1, 2, 3, 4}
	var tab Table
	tab.Reset(func(i int) uint32 { return w[i] }, len(w))
	rng := rand.New(rand.NewPCG(5, 6))
	for except := range w {
		counts := make([]int, len(w))
		const n = 200_000
		for range n {
			counts[tab.DrawExcept(rng.Uint64(), except)]++
		}
		if counts[except] != 0 {
			t.Fatalf("except %d drawn %d times", except, counts[except])
		}
		rest := 10 - int(w[except])
		for i := range w {
			if i == except {
				continue
			}
			want := float64(w[i]) / float64(rest)
			got := float64(counts[i]) / n
			if got < want*0.97 || got > want*1.03 {
				t.Errorf("except %d: index %d share %.4f, want %.4f", except, i, got, want)
			}
		}
	}
}
