package score

import (
	"slices"
	"testing"
	"time"
)

// A report's adapters reach the weights sorted and once each, stamped with
// the report's time; a report without them, an unhealthy one, or a host
// gone stale leaves none (the picker then steers as it would without).
func TestWeighterAdapters(t *testing.T) {
	w, err := NewWeighter(Config{Staleness: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	rep := Report{Healthy: true, Time: now, Signals: HasKVCache, KVCacheUsage: 0.2,
		LoRA: &LoRA{Adapters: []string{"b", "a", "b"}, Max: 4}}
	if err := w.Observe("h", rep, now); err != nil {
		t.Fatal(err)
	}
	a := w.Current()["h"].Adapters
	if a == nil || !slices.Equal(a.Names, []string{"a", "b"}) || a.Max != 4 || !a.At.Equal(now) || !a.Has("a") || a.Has("c") {
		t.Fatalf("adapters %+v", a)
	}
	if rep.LoRA.Adapters[0] != "b" {
		t.Fatal("the report's own list was sorted in place")
	}
	w.Tick(now.Add(10 * time.Second))
	if a := w.Current()["h"].Adapters; a != nil {
		t.Fatalf("stale host still has adapters %+v", a)
	}
	for _, r := range []Report{
		{Healthy: true, Time: now, Signals: HasKVCache},
		{Healthy: false, Time: now, LoRA: &LoRA{Adapters: []string{"a"}, Max: 4}},
		{Healthy: true, Time: now, LoRA: &LoRA{Adapters: []string{"a"}}},
	} {
		_ = w.Observe("h", rep, now)
		if err := w.Observe("h", r, now); err != nil {
			t.Fatal(err)
		}
		if a := w.Current()["h"].Adapters; a != nil {
			t.Fatalf("report %+v left adapters %+v", r, a)
		}
	}
}
