package pick

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/infergate/infergate/gpu/score"
	"github.com/infergate/infergate/l7/route"
)

var adapterT0 = time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)

func lora(max int, running ...string) *score.Adapters {
	slices.Sort(running)
	return &score.Adapters{Running: running, Max: max, At: adapterT0}
}

// hold keeps n requests open on b, as the gateway's in-flight count.
func hold(b *route.Backend, n int) {
	for range n {
		b.Acquire()
	}
}

// A request for an adapter goes where the reports say it is in use; when
// that backend is past the load bound, to one with a free slot, not to
// one whose slots are all taken; and once sent there, the picker counts
// it in use there before any report says so.
func TestAdapterPrefersHolderThenRoom(t *testing.T) {
	bs := backends(t, 4)
	ws := score.Weights{
		"p/p-0": {Weight: 100, Adapters: lora(2, "z", "a")},
		"p/p-1": {Weight: 100, Adapters: lora(2, "x", "b")},
		"p/p-2": {Weight: 100, Adapters: lora(2, "c")},
		"p/p-3": {Weight: 100, Adapters: lora(2, "d", "e")},
	}
	now := adapterT0.Add(100 * time.Millisecond)
	p := newPicker(t, Config{Weights: fixed(ws), Now: func() time.Time { return now }})
	prompt := []byte("a prompt long enough to fill more than one block of sixty-four bytes, so prefix affinity has a say")
	for range 20 {
		if i := p.PickModel("p", "x", bs, prompt); i != 1 {
			t.Fatalf("adapter x went to %d, want its holder 1", i)
		}
	}
	hold(bs[0], 20) // z's holder is far past the bound
	for k := range 5 {
		if i := p.PickModel("p", "z", bs, prompt); i != 2 {
			t.Fatalf("request %d for z went to %d, want 2 (a free slot)", k, i)
		}
	}
	// p-2 now has c and z: full for a third adapter, as p-1 and p-3 are.
	// A model no backend reports is no adapter and is picked as before.
	hold(bs[2], 3)
	seen := map[int]bool{}
	for range 200 {
		seen[p.PickModel("p", "base-model", bs, []byte("x"))] = true
	}
	if !seen[1] || !seen[3] {
		t.Fatalf("base model requests went only to %v", seen)
	}
}

// A hot adapter stays on its holder until that is past the load bound
// plus the adapter gain of the others' load, then spreads to a backend
// with a free slot (a holder too from then on), never to one whose slots
// are taken.
func TestAdapterHotSpreadsByLoad(t *testing.T) {
	bs := backends(t, 3)
	ws := score.Weights{
		"p/p-0": {Weight: 100, Adapters: lora(4, "hot")},
		"p/p-1": {Weight: 100, Adapters: lora(4, "cold")},
		"p/p-2": {Weight: 100, Adapters: lora(1, "other")},
	}
	p := newPicker(t, Config{Weights: fixed(ws), Now: func() time.Time { return adapterT0.Add(time.Second) }})
	var seq []int
	n := [3]int{}
	for range 60 {
		i := p.PickModel("p", "hot", bs, nil)
		if i < 0 {
			t.Fatal("no pick")
		}
		seq = append(seq, i)
		n[i]++
		hold(bs[i], 1) // every request stays open: load only grows
	}
	// The first goes to the holder; with one request there it is past
	// the bound plus the gain of the others' (per unit of weight,
	// 2/100 > 3.25*1/200), so the next opens the free slot on p-1, and
	// the two holders share the rest by load.
	if seq[0] != 0 || seq[1] != 1 {
		t.Fatalf("first picks %v, want the holder, then the free slot", seq[:4])
	}
	if n[2] != 0 || n[0]-n[1] > 2 || n[1]-n[0] > 2 {
		t.Fatalf("hot adapter split %v, want none on the full backend and the holders even", n)
	}
}

// With no adapters in any report, or for a model that no backend has
// reported as an adapter, PickAdapter hands the backends to the picker
// it wraps whole, and the pick is what it would have been.
func TestAdapterNoInformationNoChange(t *testing.T) {
	bs := backends(t, 3)
	for _, ws := range []score.Weights{
		{"p/p-0": {Weight: 100}, "p/p-1": {Weight: 100}, "p/p-2": {Weight: 100}},
		{"p/p-0": {Weight: 100, Adapters: lora(1, "a")}, "p/p-1": {Weight: 100, Adapters: lora(1, "b")}, "p/p-2": {Weight: 100}},
	} {
		p := newPicker(t, Config{Weights: fixed(ws)})
		for _, model := range []string{"", "m", "c"} {
			var got []*route.Backend
			i := p.PickAdapter("p", model, bs, func(sub []*route.Backend) int { got = sub; return 2 })
			if i != 2 || len(got) != len(bs) {
				t.Fatalf("model %q: pick %d over %d backends, want 2 over all", model, i, len(got))
			}
		}
	}
}

// A send is forgotten once a report measured after it arrives: the report
// says whether the adapter is still in use there.
func TestAdapterSendsGiveWayToNewerReports(t *testing.T) {
	bs := backends(t, 2)
	now := adapterT0
	ws := score.Weights{
		"p/p-0": {Weight: 100, Adapters: lora(1, "known")},
		"p/p-1": {Weight: 100, Adapters: lora(1)},
	}
	p := newPicker(t, Config{Weights: func() score.Weights { return ws }, WeightsTTL: -1, Now: func() time.Time { return now }})
	hold(bs[0], 10)
	now = now.Add(10 * time.Millisecond)
	if i := p.PickModel("p", "known", bs, nil); i != 1 {
		t.Fatalf("pick %d, want the free slot 1", i)
	}
	// p-1 now counts "known" in use (its only slot): "other" (reported
	// on p-0) finds no free slot on p-1 but a holder on p-0.
	ws["p/p-0"] = score.Weight{Weight: 100, Adapters: lora(1, "known", "other")}
	if cls := p.adapterClass(ws["p/p-1"].Adapters, "p/p-1", "other", now); cls != adapterFull {
		t.Fatalf("p-1 class %d for a second adapter, want full", cls)
	}
	// A report measured after the send, without "known": p-1's slot is
	// free again.
	ws["p/p-1"] = score.Weight{Weight: 100, Adapters: &score.Adapters{Max: 1, At: now.Add(time.Millisecond)}}
	if cls := p.adapterClass(ws["p/p-1"].Adapters, "p/p-1", "other", now.Add(2*time.Millisecond)); cls != adapterRoom {
		t.Fatalf("p-1 class %d after a newer report, want room", cls)
	}
}

// Backends an adapter's requests leave out (busy with other adapters)
// are not absent: when a later request offers them again, the cold
// path's steady weights have them at their own weight, not slow-starting
// from a tenth of it as for a backend back from a failure.
func TestAdapterNarrowingIsNoAbsence(t *testing.T) {
	bs := backends(t, 4)
	now := adapterT0.Add(100 * time.Millisecond)
	ws := score.Weights{
		"p/p-0": {Weight: 100, Adapters: &score.Adapters{Running: []string{"x"}, Max: 1, At: now}},
		"p/p-1": {Weight: 100, Adapters: &score.Adapters{Running: []string{"y"}, Max: 1, At: now}},
		"p/p-2": {Weight: 100, Adapters: &score.Adapters{Running: []string{"y"}, Max: 1, At: now}},
		"p/p-3": {Weight: 100, Adapters: &score.Adapters{Running: []string{"y"}, Max: 1, At: now}},
	}
	p := newPicker(t, Config{Weights: fixed(ws), WeightsTTL: -1, Now: func() time.Time { return now }})
	for k := range 60 {
		// A cold prompt each second for adapter x, which only p-0 has.
		if i := p.PickModel("p", "x", bs, []byte(fmt.Sprintf("cold prompt %d that fills at least one block of sixty-four bytes", k))); i != 0 {
			t.Fatalf("request %d for x went to %d, want its holder 0", k, i)
		}
		now = now.Add(time.Second)
	}
	weights := []float64{100, 100, 100, 100}
	steady := p.steadyWeights("p", bs, weights, now, nil)
	for i, w := range steady {
		if w < 90 {
			t.Errorf("p-%d's steady weight after a minute left out by adapter x is %.1f, want its weight 100 (no slow start)", i, w)
		}
	}
}
