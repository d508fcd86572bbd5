package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type backend string

func (b backend) Addr() string { return string(b) }

// Observations land in the series of their route, backend and class; a
// dropped series stops being exported and takes no new observations.
func TestSeriesAndRetain(t *testing.T) {
	m := New(func() Snapshot { return Snapshot{} })
	rs := m.Route("web", RouteLabel("", ""), "p")
	a, b := backend("10.0.0.1:80"), backend("10.0.0.2:80")
	rs.For(a).Observe(200, time.Millisecond)
	rs.For(a).Observe(204, time.Millisecond)
	rs.For(b).Observe(503, time.Second)
	rs.For(nil).Observe(503, 0)
	rs.For(a).Observe(0, 0)
	if got := testutil.ToFloat64(m.requests.WithLabelValues("web", "*/", "p", string(a), "2xx")); got != 2 {
		t.Errorf("a 2xx: %v", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("web", "*/", "p", "", "5xx")); got != 1 {
		t.Errorf("no backend 5xx: %v", got)
	}
	if n := testutil.CollectAndCount(m.requests); n != 4 {
		t.Errorf("%d series, want 4", n)
	}
	old := rs.For(b)
	m.Retain(func(k SeriesKey) bool { return k.Backend != string(b) })
	old.Observe(404, 0) // in flight on what the reload removed
	if n := testutil.CollectAndCount(m.requests); n != 3 {
		t.Errorf("after Retain: %d series, want 3", n)
	}
	if strings.Contains(gatherText(t, m), string(b)) {
		t.Error("the dropped backend is still exported")
	}
}

func gatherText(t *testing.T, m *Metrics) string {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, f := range fams {
		sb.WriteString(f.String())
	}
	return sb.String()
}

// What a request costs the metrics: the series lookup by backend and the
// counter and histogram updates.
func BenchmarkObserve(b *testing.B) {
	m := New(func() Snapshot { return Snapshot{} })
	rs := m.Route("web", "*/", "p")
	be := backend("10.0.0.1:80")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rs.For(be).Observe(200, 3*time.Millisecond)
		}
	})
}
