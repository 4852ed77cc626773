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
		LoRA: &LoRA{Running: []string{"b", "a", "b"}, Waiting: []string{"c", "a"}, Max: 4}}
	if err := w.Observe("h", rep, now); err != nil {
		t.Fatal(err)
	}
	a := w.Current()["h"].Adapters
	if a == nil || !slices.Equal(a.Running, []string{"a", "b"}) || !slices.Equal(a.Waiting, []string{"a", "c"}) || a.Max != 4 || !a.At.Equal(now) ||
		!a.Has("c") || a.IsRunning("c") || a.Has("d") || a.InUse() != 3 {
		t.Fatalf("adapters %+v", a)
	}
	if rep.LoRA.Running[0] != "b" {
		t.Fatal("the report's own list was sorted in place")
	}
	w.Tick(now.Add(10 * time.Second))
	if a := w.Current()["h"].Adapters; a != nil {
		t.Fatalf("stale host still has adapters %+v", a)
	}
	for _, r := range []Report{
		{Healthy: true, Time: now, Signals: HasKVCache},
		{Healthy: false, Time: now, LoRA: &LoRA{Running: []string{"a"}, Max: 4}},
		{Healthy: true, Time: now, LoRA: &LoRA{Running: []string{"a"}}},
		{Healthy: true, Time: now, LoRA: &LoRA{Waiting: []string{""}, Max: 4}},
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
