package route

import (
	"testing"
	"time"
)

// fakeClock is a settable clock for OutlierConfig.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func outlierTable(t *testing.T, cfg OutlierConfig) (*Table, []*Backend, *Outliers) {
	t.Helper()
	o, err := NewOutliers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := New(compiled(), Options{Getenv: env, Outliers: o})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := tb.Lookup("m")
	return tb, m.Routes[0].Pool.Backends, o
}

// A backend failing Consecutive attempts in a row gets no requests from
// power of two choices for the back-off, then takes them again; a success
// between failures resets the count; the next marking lasts twice as long.
func TestOutlierMarksOutAndReturns(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	_, bs, o := outlierTable(t, OutlierConfig{Consecutive: 3, BaseEjection: 10 * time.Second, Now: clk.now})
	bad := bs[1]
	bad.Observe(OutcomeFailure)
	bad.Observe(OutcomeFailure)
	bad.Observe(OutcomeSuccess)
	bad.Observe(OutcomeFailure)
	bad.Observe(OutcomeFailure)
	bad.Observe(OutcomeNeutral)
	if bad.Ejected() {
		t.Fatal("marked out after a success broke the run of failures")
	}
	bad.Observe(OutcomeFailure)
	if !bad.Ejected() || o.Ejections() != 1 {
		t.Fatalf("not marked out after 3 failures in a row (ejections %d)", o.Ejections())
	}
	for range 2000 {
		if PowerOfTwo(bs) == bad {
			t.Fatal("power of two choices picked a marked-out backend")
		}
	}
	clk.t = clk.t.Add(10 * time.Second)
	if bad.Ejected() {
		t.Fatal("still marked out after the back-off")
	}
	got := 0
	for range 2000 {
		if PowerOfTwo(bs) == bad {
			got++
		}
	}
	if got == 0 {
		t.Fatal("no requests after the back-off ended")
	}
	for range 3 {
		bad.Observe(OutcomeFailure)
	}
	clk.t = clk.t.Add(15 * time.Second)
	if !bad.Ejected() {
		t.Fatal("second marking did not back off longer than the first")
	}
	clk.t = clk.t.Add(5 * time.Second)
	if bad.Ejected() {
		t.Fatal("second marking lasted past twice the base")
	}
	for range 3 {
		bad.Observe(OutcomeFailure)
	}
	o.Reinstate(bad.Addr)
	if bad.Ejected() {
		t.Fatal("Reinstate left the backend marked out")
	}
}

// No more than MaxFraction of a pool (at least one backend) is marked out,
// whatever fails; the cap's slot frees when a marking ends.
func TestOutlierPoolCap(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	_, bs, _ := outlierTable(t, OutlierConfig{Consecutive: 1, MaxFraction: 0.5, BaseEjection: time.Second, Now: clk.now})
	for _, b := range bs {
		b.Observe(OutcomeFailure)
	}
	n := 0
	for _, b := range bs {
		if b.Ejected() {
			n++
		}
	}
	if n != 1 { // half of three, at least one
		t.Fatalf("%d of %d backends marked out, want 1", n, len(bs))
	}
	if PowerOfTwo(bs) == nil {
		t.Fatal("no backend chosen")
	}
	clk.t = clk.t.Add(time.Second)
	bs[2].Observe(OutcomeFailure)
	if !bs[2].Ejected() {
		t.Fatal("the cap's slot did not free when the first marking ended")
	}
}

// A table built without Outliers (or with marking disabled) never marks.
func TestOutlierOff(t *testing.T) {
	_, bs, _ := outlierTable(t, OutlierConfig{Disabled: true, Consecutive: 1})
	bs[0].Observe(OutcomeFailure)
	if bs[0].Ejected() {
		t.Fatal("disabled marking marked a backend out")
	}
	if _, err := NewOutliers(OutlierConfig{MaxFraction: 2}); err == nil {
		t.Fatal("fraction 2 accepted")
	}
	if _, err := NewOutliers(OutlierConfig{BaseEjection: time.Minute, MaxEjection: time.Second}); err == nil {
		t.Fatal("max ejection below base accepted")
	}
}
