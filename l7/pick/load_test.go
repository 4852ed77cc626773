package pick

import (
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/affinity"
	"github.com/infergate/infergate/l7/route"
)

// A backend still prefilling a long prompt for this gateway counts as
// loaded though its in-flight count equals the others': new requests go
// elsewhere, whether they carry a prompt or not.
func TestPendingPromptTokensSteerAway(t *testing.T) {
	bs := backends(t, 2)
	p := newPicker(t, Config{Weights: fixed(score.Weights{"p/p-0": {Weight: 100}, "p/p-1": {Weight: 100}})})
	for _, b := range bs {
		b.Acquire()
	}
	bs[0].AddPending(32000)
	ch, _ := affinity.New(affinity.Config{})
	for i := range 200 {
		if got := p.Pick("p", bs); got != 1 {
			t.Fatalf("Pick chose the backend prefilling 32k tokens")
		}
		hashes := ch.Hashes([]byte(time.Duration(i).String() + " a prompt long enough to fill one affinity block of the chooser, and then some more text"))
		if got := p.PickBlocks("p", bs, hashes); got != 1 {
			t.Fatalf("PickBlocks chose the backend prefilling 32k tokens")
		}
	}
	bs[0].AddPending(-32000)
	seen := map[int]int{}
	for range 400 {
		seen[p.Pick("p", bs)]++
	}
	if seen[0] < 100 {
		t.Fatalf("picks %v once its prefill ended, want both used", seen)
	}
}

// A backend marked out by the route table's outlier marking weighs 0.
func TestPickSkipsMarkedOut(t *testing.T) {
	o, err := route.NewOutliers(route.OutlierConfig{Consecutive: 1})
	if err != nil {
		t.Fatal(err)
	}
	bs := backendsWith(t, 3, route.Options{Outliers: o})
	bs[2].Observe(route.OutcomeFailure)
	p := newPicker(t, Config{Weights: fixed(nil)})
	for range 500 {
		if p.Pick("p", bs) == 2 {
			t.Fatal("Pick chose a marked-out backend")
		}
	}
}
