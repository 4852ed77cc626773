package gateway

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// The series cache must give the same children as WithLabelValues and make
// none before its first use, so /metrics shows the same series as without it.
func TestSeriesCacheIsLazyAndShared(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	k := seriesKey{tenant: "acme", model: "gpt", backend: "b1", status: 200}
	s := m.series(k)
	if s2 := m.series(k); s2 != s {
		t.Fatal("second lookup of the same label set did not hit the cache")
	}
	s.observeDuration(m, 0.5)
	s.observeTokens(m, tokenTypeInput, 7)
	for name, c := range map[string]prometheus.Collector{"ttft": m.ttft, "tpot": m.tpot, "cost": m.cost} {
		if n := testutil.CollectAndCount(c); n != 0 {
			t.Errorf("%s has %d series before any observation, want 0", name, n)
		}
	}
	if n := testutil.CollectAndCount(m.tokens); n != 1 {
		t.Errorf("token usage has %d series after one input observation, want 1", n)
	}
	s.observeTokens(m, tokenTypeOutput, 3)
	m.series(k).observeTokens(m, tokenTypeOutput, 4)
	s.addCost(m, 0.25)
	if got := testutil.ToFloat64(m.cost.WithLabelValues("acme", "gpt", "b1", "200")); got != 0.25 {
		t.Errorf("cost under the formatted labels = %v, want 0.25", got)
	}
	out := m.tokens.WithLabelValues("acme", "gpt", "b1", "200", "output").(prometheus.Histogram)
	if n := testutil.CollectAndCount(out); n != 1 {
		t.Fatalf("output series count %d", n)
	}
	// Observations through the cache land in the series the vector holds.
	var pb dto.Metric
	if err := out.Write(&pb); err != nil {
		t.Fatal(err)
	}
	if h := pb.GetHistogram(); h.GetSampleCount() != 2 || h.GetSampleSum() != 7 {
		t.Errorf("output tokens: count %d sum %v, want 2 and 7", h.GetSampleCount(), h.GetSampleSum())
	}
}

// Past maxCachedSeries the lookups still work, uncached.
func TestSeriesCacheBound(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m.cached.Store(maxCachedSeries)
	k := seriesKey{tenant: "t", model: "m", backend: "b", status: 429}
	s := m.series(k)
	if m.series(k) == s {
		t.Fatal("a lookup past the bound was cached")
	}
	s.observeDuration(m, 1)
	m.series(k).observeDuration(m, 1)
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Fatalf("duration has %d series, want 1", n)
	}
}

// An exchange's remembered series is the one m.series gives for the key
// asked, whatever it recorded into before, and belongs to the metrics
// asked for.
func TestSeriesForFollowsKeyAndMetrics(t *testing.T) {
	m1, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m2, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	a := seriesKey{tenant: "t", model: "m", backend: "p/a", status: 200}
	b := a
	b.status = 500
	var last lastRecorded
	for _, c := range []struct {
		m *metrics
		k seriesKey
	}{{m1, a}, {m1, a}, {m1, b}, {m1, a}, {m2, a}, {m1, a}} {
		if got, want := last.seriesFor(c.m, c.k), c.m.series(c.k); got != want {
			t.Fatalf("seriesFor(%v) = %p (labels %v), want %p", c.k, got, got.labels, want)
		}
	}
}
