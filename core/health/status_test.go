package health

import (
	"math"
	"testing"
	"time"
)

func TestPoolAvailability(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{0.99, 0.99}, 0.9999},
		{[]float64{0.9}, 0.9},
		{[]float64{0.5, 0.5, 0.5}, 0.875},
		{[]float64{1, 0}, 1},
		{nil, 0},
	} {
		if got := PoolAvailability(tt.in); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%v: %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestWindow(t *testing.T) {
	var s Status
	now := time.Unix(1_000_000, 0)
	if a, ok := s.Availability(now); !ok && a != 1 {
		t.Fatalf("empty: %v %v", a, ok)
	}
	for i := range 100 {
		s.window.record(i%4 != 0, now.Add(time.Duration(i)*time.Second))
	}
	a, ok := s.Availability(now.Add(100 * time.Second))
	if !ok || a != 0.75 {
		t.Fatalf("availability %v, want 0.75", a)
	}
	// Ten minutes later the window has forgotten it all.
	if _, ok := s.Availability(now.Add(11 * time.Minute)); ok {
		t.Fatal("outcomes older than the window still count")
	}
}

func TestRiseAndFall(t *testing.T) {
	var s Status
	r := Rules{Rise: 2, Fall: 3}
	now := time.Now()
	steps := []struct {
		v    State
		want State
	}{
		{Down, Up}, {Down, Up}, {Down, Down}, // three bad probes
		{Up, Down}, {Up, Up}, // two good ones
		{Degraded, Degraded}, {Up, Up}, // degraded follows the latest verdict
		{Down, Up}, {Up, Up}, {Down, Up}, {Down, Up}, {Down, Down},
	}
	for i, st := range steps {
		s.RecordProbe(st.v, "", r, now)
		if got := s.State(); got != st.want {
			t.Fatalf("step %d (%s): state %s, want %s", i, st.v, got, st.want)
		}
	}
}

func TestEjectionGrows(t *testing.T) {
	var s Status
	r := Rules{ConsecutiveFailures: 2, BaseEjection: time.Second, MaxEjection: 3 * time.Second}
	now := time.Unix(2_000_000, 0)
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
	for i, d := range want {
		if s.RecordPassive(false, r, now) {
			t.Fatalf("round %d: one failure wants an ejection", i)
		}
		if !s.RecordPassive(false, r, now) {
			t.Fatalf("round %d: two failures want no ejection", i)
		}
		until := s.Eject("test", r, now)
		if got := until.Sub(now); got != d {
			t.Fatalf("ejection %d lasts %s, want %s", i, got, d)
		}
		if s.Eligible(now) || !s.Eligible(until) {
			t.Fatalf("ejection %d: eligibility wrong", i)
		}
		now = until
		if !s.Readmit(now) {
			t.Fatalf("ejection %d: not readmitted at its end", i)
		}
	}
	// A success resets the failure count.
	s.RecordPassive(false, r, now)
	s.RecordPassive(true, r, now)
	if s.RecordPassive(false, r, now) {
		t.Fatal("failures were not reset by a success")
	}
}
