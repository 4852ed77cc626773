package score

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func newWeighter(t *testing.T, c Config) *Weighter {
	t.Helper()
	w, err := NewWeighter(c)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func kvReport(kv float64, at time.Time) Report {
	return Report{Healthy: true, Time: at, Signals: HasKVCache, KVCacheUsage: kv}
}

func observe(t *testing.T, w *Weighter, name string, r Report, now time.Time) {
	t.Helper()
	if err := w.Observe(name, r, now); err != nil {
		t.Fatal(err)
	}
}

func TestWeighterFirstReportTakenAsIs(t *testing.T) {
	w := newWeighter(t, Config{})
	observe(t, w, "a", kvReport(0.5, t0), t0)
	if got := w.Current()["a"].Weight; got != 50 {
		t.Fatalf("first report: weight %d, want 50", got)
	}
}

func TestWeighterEWMA(t *testing.T) {
	w := newWeighter(t, Config{Alpha: 0.25})
	observe(t, w, "a", kvReport(0, t0), t0) // 100
	// A step to kv 0.6 (target 40) moves a quarter of the gap each report.
	want := 100.0
	for i := 1; i <= 8; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		observe(t, w, "a", kvReport(0.6, now), now)
		want += 0.25 * (40 - want)
		if got := w.Current()["a"].Weight; got != uint32(math.Round(want)) {
			t.Fatalf("step %d: weight %d, want %v", i, got, math.Round(want))
		}
	}
	// One outlier moves the weight by only alpha of the jump.
	before := w.Current()["a"].Weight
	now := t0.Add(9 * time.Second)
	observe(t, w, "a", kvReport(1, now), now)
	after := w.Current()["a"].Weight
	if d := float64(before) - float64(after); d <= 0 || d > 0.25*float64(before)+1 {
		t.Fatalf("single outlier moved weight from %d to %d", before, after)
	}
}

func TestWeighterMinFloor(t *testing.T) {
	w := newWeighter(t, Config{MinWeight: 7})
	observe(t, w, "a", kvReport(1, t0), t0)
	if got := w.Current()["a"]; got.Weight != 7 || got.Draining {
		t.Fatalf("full host: %+v, want floor 7 and not draining", got)
	}
}

func TestWeighterHysteresis(t *testing.T) {
	w := newWeighter(t, Config{Alpha: 1, RebuildThreshold: 0.1})
	observe(t, w, "a", kvReport(0, t0), t0)
	observe(t, w, "b", kvReport(0, t0), t0)
	first, rebuild := w.Next()
	if !rebuild || first["a"].Weight != 100 || first["b"].Weight != 100 {
		t.Fatalf("first Next: %v rebuild=%v", first, rebuild)
	}
	// Moves within 10% do not rebuild, however many there are.
	for i, kv := range []float64{0.05, 0.02, 0.08, 0.1, 0.0, 0.09} {
		now := t0.Add(time.Duration(i+1) * time.Second)
		observe(t, w, "a", kvReport(kv, now), now)
		got, rebuild := w.Next()
		if rebuild {
			t.Fatalf("kv %v: rebuild on a %d%% move", kv, int(kv*100))
		}
		if got["a"].Weight != 100 {
			t.Fatalf("kv %v: published weight changed to %d without rebuild", kv, got["a"].Weight)
		}
	}
	if cur := w.Current()["a"].Weight; cur != 91 {
		t.Fatalf("Current should follow load without hysteresis: %d", cur)
	}
	// A move past the threshold rebuilds and publishes the new value.
	observe(t, w, "a", kvReport(0.2, t0.Add(10*time.Second)), t0.Add(10*time.Second))
	got, rebuild := w.Next()
	if !rebuild || got["a"].Weight != 80 || got["b"].Weight != 100 {
		t.Fatalf("20%% move: %v rebuild=%v", got, rebuild)
	}
	// Hysteresis is measured against the last published value, so a slow
	// drift rebuilds once it has added up.
	_, rebuild = w.Next()
	if rebuild {
		t.Fatal("rebuild without a change")
	}
	drift := 0
	for i, kv := range []float64{0.25, 0.3, 0.35} {
		now := t0.Add(time.Duration(11+i) * time.Second)
		observe(t, w, "a", kvReport(kv, now), now)
		if _, r := w.Next(); r {
			drift++
		}
	}
	if drift != 1 {
		t.Fatalf("drift from 80 to 65 in steps of 5 rebuilt %d times, want 1", drift)
	}
}

func TestWeighterMembershipRebuilds(t *testing.T) {
	w := newWeighter(t, Config{})
	observe(t, w, "a", kvReport(0, t0), t0)
	w.Next()
	observe(t, w, "b", kvReport(0, t0), t0)
	if got, rebuild := w.Next(); !rebuild || len(got) != 2 {
		t.Fatalf("new host: %v rebuild=%v", got, rebuild)
	}
	w.Remove("a")
	if got, rebuild := w.Next(); !rebuild || len(got) != 1 {
		t.Fatalf("removed host: %v rebuild=%v", got, rebuild)
	}
	if err := w.SetNeutral("c", 300); err != nil {
		t.Fatal(err)
	}
	if got, rebuild := w.Next(); !rebuild || got["c"].Weight != 300 {
		t.Fatalf("host registered by SetNeutral: %v rebuild=%v", got, rebuild)
	}
}

func TestWeighterStaleDecaysToNeutral(t *testing.T) {
	w := newWeighter(t, Config{Alpha: 0.5, Staleness: 5 * time.Second, NeutralWeight: 100})
	observe(t, w, "busy", kvReport(0.9, t0), t0) // 10
	observe(t, w, "idle", Report{Healthy: true, Time: t0, Capacity: 3}, t0)
	w.Tick(t0.Add(5 * time.Second))
	if c := w.Current(); c["busy"].Stale || c["busy"].Weight != 10 {
		t.Fatalf("not yet stale: %+v", c["busy"])
	}
	var last Weights
	for i := 6; i < 30; i++ {
		w.Tick(t0.Add(time.Duration(i) * time.Second))
		c := w.Current()
		if !c["busy"].Stale || !c["idle"].Stale {
			t.Fatalf("tick %d: not marked stale: %v", i, c)
		}
		if last != nil {
			if c["busy"].Weight < last["busy"].Weight || c["idle"].Weight > last["idle"].Weight {
				t.Fatalf("tick %d: not moving monotonically to neutral: %v after %v", i, c, last)
			}
		}
		last = c
	}
	if last["busy"].Weight != 100 || last["idle"].Weight != 100 {
		t.Fatalf("after many ticks: %v, want both at neutral 100", last)
	}
	// A fresh report ends staleness.
	now := t0.Add(31 * time.Second)
	observe(t, w, "busy", kvReport(0.5, now), now)
	if c := w.Current()["busy"]; c.Stale {
		t.Fatalf("fresh report left host stale: %+v", c)
	}
}

func TestWeighterStaleUsesPerHostNeutral(t *testing.T) {
	w := newWeighter(t, Config{Alpha: 1, Staleness: time.Second})
	if err := w.SetNeutral("a", 250); err != nil {
		t.Fatal(err)
	}
	if got := w.Current()["a"].Weight; got != 250 {
		t.Fatalf("never-reported host: %d, want its neutral 250", got)
	}
	observe(t, w, "a", kvReport(0.5, t0), t0)
	w.Tick(t0.Add(2 * time.Second))
	if got := w.Current()["a"].Weight; got != 250 {
		t.Fatalf("stale host: %d, want its neutral 250", got)
	}
}

func TestWeighterOldReportIgnored(t *testing.T) {
	w := newWeighter(t, Config{Alpha: 1, Staleness: 5 * time.Second})
	observe(t, w, "a", kvReport(0.2, t0), t0)
	now := t0.Add(time.Minute)
	if err := w.Observe("a", kvReport(0.9, t0.Add(10*time.Second)), now); err == nil {
		t.Fatal("report 50s old accepted")
	}
	if got := w.Current()["a"].Weight; got != 80 {
		t.Fatalf("old report changed weight to %d", got)
	}
}

func TestWeighterUnhealthyDrains(t *testing.T) {
	w := newWeighter(t, Config{Alpha: 0.2, Staleness: 5 * time.Second})
	observe(t, w, "a", kvReport(0.9, t0), t0)
	observe(t, w, "b", kvReport(0, t0), t0)
	w.Next()
	bad := Report{Healthy: false, Reason: "XID 79 on GPU 3", Time: t0.Add(time.Second)}
	observe(t, w, "b", bad, t0.Add(time.Second))
	got, rebuild := w.Next()
	if !rebuild {
		t.Fatal("draining did not rebuild")
	}
	if !got["b"].Draining || got["b"].Weight != 0 {
		t.Fatalf("unhealthy host: %+v, want weight 0 draining", got["b"])
	}
	// Still drained while silent, even past staleness.
	w.Tick(t0.Add(time.Minute))
	if c := w.Current()["b"]; !c.Draining || c.Weight != 0 {
		t.Fatalf("silent drained host undrained: %+v", c)
	}
	// A healthy report undrains, starting from its own score rather than
	// EWMA from zero or from pre-failure history.
	now := t0.Add(61 * time.Second)
	observe(t, w, "b", kvReport(0.3, now), now)
	got, rebuild = w.Next()
	if !rebuild || got["b"].Draining || got["b"].Weight != 70 {
		t.Fatalf("recovered host: %+v rebuild=%v, want 70", got["b"], rebuild)
	}
}

func TestWeighterHysteresisNearFloor(t *testing.T) {
	// Base 100, so moves are measured against at least 25: a host near the
	// floor wobbling between 5 and 8 never rebuilds; reaching 40 does.
	w := newWeighter(t, Config{Alpha: 1, RebuildThreshold: 0.15})
	observe(t, w, "a", kvReport(0.95, t0), t0) // 5
	observe(t, w, "b", kvReport(0, t0), t0)
	w.Next()
	for i, kv := range []float64{0.93, 0.95, 0.92, 0.94} { // 7, 5, 8, 6
		now := t0.Add(time.Duration(i+1) * time.Second)
		observe(t, w, "a", kvReport(kv, now), now)
		if _, rebuild := w.Next(); rebuild {
			t.Fatalf("kv %v (weight %d): rebuild on noise near the floor", kv, w.Current()["a"].Weight)
		}
	}
	observe(t, w, "a", kvReport(0.6, t0.Add(time.Minute)), t0.Add(time.Minute))
	if got, rebuild := w.Next(); !rebuild || got["a"].Weight != 40 {
		t.Fatalf("recovery to 40: %v rebuild=%v", got, rebuild)
	}
}

func TestWeighterFloorScalesWithCapacity(t *testing.T) {
	w := newWeighter(t, Config{MinWeight: 10})
	full := func(capacity float64) Report {
		r := kvReport(1, t0)
		r.Capacity = capacity
		return r
	}
	observe(t, w, "h200", full(1.43), t0)
	observe(t, w, "h100", full(1), t0)
	observe(t, w, "a10", full(0.18), t0)
	observe(t, w, "tiny", full(0.01), t0)
	c := w.Current()
	for name, want := range map[string]uint32{"h200": 14, "h100": 10, "a10": 2, "tiny": 1} {
		if got := c[name]; got.Weight != want || got.Draining {
			t.Errorf("%s with a full cache: %+v, want floor %d", name, got, want)
		}
	}
	// The KV-derated capacity sets the floor too.
	r := full(1)
	r.Signals |= HasKVTokens
	r.KVCacheTokens = 31_000
	observe(t, w, "kv-starved", r, t0)
	if got := w.Current()["kv-starved"].Weight; got != 3 {
		t.Errorf("capacity 1 with 31k KV tokens (effective 0.29): floor %d, want 3", got)
	}
}

func TestWeighterSetCapacityOverrides(t *testing.T) {
	w := newWeighter(t, Config{Alpha: 1})
	if err := w.SetCapacity("a", 0.06); err != nil {
		t.Fatal(err)
	}
	r := kvReport(0, t0)
	r.Capacity = 0.18
	r.Signals |= HasKVTokens
	r.KVCacheTokens = 1000 // would derate far below 0.06
	observe(t, w, "a", r, t0)
	if got := w.Current()["a"].Weight; got != 6 {
		t.Fatalf("idle host with operator capacity 0.06: weight %d, want 6", got)
	}
	if err := w.SetCapacity("a", 0); err != nil {
		t.Fatal(err)
	}
	r.KVCacheTokens = 1e6
	observe(t, w, "a", r, t0)
	if got := w.Current()["a"].Weight; got != 18 {
		t.Fatalf("override cleared: weight %d, want the report's 18", got)
	}
	for _, bad := range []float64{-1, math.NaN(), 1e9} {
		if err := w.SetCapacity("a", bad); err == nil {
			t.Errorf("capacity %v accepted", bad)
		}
	}
}
