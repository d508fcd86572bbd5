package swrr

import (
	"testing"

	"github.com/wproxy/wproxy/sdk/go/lb"
)

func TestScheduleMatchesNginx(t *testing.T) {
	got := Schedule([]uint64{5, 1, 1}, nil)
	want := []uint32{0, 0, 1, 0, 2, 0, 0} // a a b a c a a
	if len(got) != len(want) {
		t.Fatalf("period %d, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("schedule %v, want %v", got, want)
		}
	}
}

func TestScheduleReducesByGCD(t *testing.T) {
	if got := Schedule([]uint64{10, 20, 30}, nil); len(got) != 6 {
		t.Fatalf("period %d, want 6", len(got))
	}
}

func TestScheduleCapsPeriod(t *testing.T) {
	w := []uint64{1_000_000, 999_999, 1}
	s := Schedule(w, nil)
	if len(s) > MaxPeriod+3 {
		t.Fatalf("period %d exceeds cap", len(s))
	}
	counts := make([]int, 3)
	for _, i := range s {
		counts[i]++
	}
	if counts[2] < 1 || counts[0] < counts[1] {
		t.Fatalf("shares off: %v", counts)
	}
}

func TestPickExactOverPeriods(t *testing.T) {
	p, _ := New(nil)
	eps := []lb.Endpoint{{Address: "a:1", Weight: 5}, {Address: "b:1", Weight: 1}, {Address: "c:1", Weight: 1}}
	if err := p.SetEndpoints(1, eps); err != nil {
		t.Fatal(err)
	}
	counts := make([]int, 3)
	for seq := range uint64(7000) {
		counts[p.Pick(lb.Request{Seq: seq})]++
	}
	if counts[0] != 5000 || counts[1] != 1000 || counts[2] != 1000 {
		t.Fatalf("counts %v, want [5000 1000 1000]", counts)
	}
}

func TestPickEmpty(t *testing.T) {
	p, _ := New(nil)
	_ = p.SetEndpoints(1, nil)
	if got := p.Pick(lb.Request{}); got != lb.NoEndpoint {
		t.Fatalf("pick on empty set = %d", got)
	}
}

func TestNewRejectsConfig(t *testing.T) {
	if _, err := New([]byte(`{"bogus":1}`)); err == nil {
		t.Fatal("unknown config field accepted")
	}
	if _, err := New([]byte(`{}`)); err != nil {
		t.Fatal(err)
	}
}
